/* vaultctl/audit.h: the audit group: tail, search, verify, export (audit.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_audit(struct ctx *ctx, int argc, char **argv);
