/* vaultctl/users.h: the user group: add, list, get, passwd, roles, reset-mfa, del (users.c).
 * Each returns an exit code (ctx.h); argv[0] is the command's name. */
#pragma once
#include "vaultctl/ctx.h"

int cmd_user(struct ctx *ctx, int argc, char **argv);
