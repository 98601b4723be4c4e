/* vaultctl/token.h: the login token, from $VAULTD_TOKEN or the token file
 * $XDG_RUNTIME_DIR/vaultctl/token (else /run/user/<uid>/vaultctl/token).
 * The file and its directory must belong to the user and be closed to group
 * and others (0600 and 0700); anything looser is refused, not repaired:
 * someone else may already have read the token.
 */
#pragma once
#include "vaultctl/ctx.h"

/* Loads the token into ctx->token once (NULL when there is none). EXIT_OK, or
 * EXIT_ERROR after saying why a token file was refused. */
int token_get(struct ctx *ctx);
/* Writes the token file atomically (temp file + rename). EXIT_OK and the
 * file's path in *ret_path, or EXIT_ERROR after saying why. */
int token_store(const char *token, size_t len, char **ret_path);
/* Checks (creating the directory) that token_store() can write, before a
 * login spends a TOTP code. EXIT_OK or EXIT_ERROR after saying why. */
int token_can_store(void);
/* Removes the token file if there is one. EXIT_OK or EXIT_ERROR. */
int token_remove(void);
