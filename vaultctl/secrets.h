/* vaultctl/secrets.h: put, get, list, delete, versions, rollback, promote (secrets.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_put(struct ctx *ctx, int argc, char **argv);
int cmd_get(struct ctx *ctx, int argc, char **argv);
int cmd_list(struct ctx *ctx, int argc, char **argv);
int cmd_delete(struct ctx *ctx, int argc, char **argv);
int cmd_versions(struct ctx *ctx, int argc, char **argv);
int cmd_rollback(struct ctx *ctx, int argc, char **argv);
int cmd_promote(struct ctx *ctx, int argc, char **argv);
