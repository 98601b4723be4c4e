/* vaultctl/sys.h: status, init, unlock, lock (sys.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_status(struct ctx *ctx, int argc, char **argv);
int cmd_init(struct ctx *ctx, int argc, char **argv);
int cmd_unlock(struct ctx *ctx, int argc, char **argv);
int cmd_lock(struct ctx *ctx, int argc, char **argv);
