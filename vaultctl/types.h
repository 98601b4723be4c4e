/* vaultctl/types.h: 'vaultctl types [TYPE]' (types.c). Returns an exit code
 * (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_types(struct ctx *ctx, int argc, char **argv);
