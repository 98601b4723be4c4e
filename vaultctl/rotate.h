/* vaultctl/rotate.h: the rotate group: secret, kek, root, hsm, all, status, job (rotate.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_rotate(struct ctx *ctx, int argc, char **argv);
