/* vaultctl/backup.h: backup (backup.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_backup(struct ctx *ctx, int argc, char **argv);
