/* vaultctl/services.h: the service group: add, list, get, del (services.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_service(struct ctx *ctx, int argc, char **argv);
