/* vaultctl/roles.h: the role group: set, get, list, del (roles.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_role(struct ctx *ctx, int argc, char **argv);
