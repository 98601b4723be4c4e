/* vaultctl/ctx.h: the exit codes and the invocation context that every
 * vaultctl module shares. Types and constants only, defined by no .c file,
 * so any module may include it without creating a dependency on another.
 * Commands return an exit code (section 9 of ARCHITECTURE.md), never -errno:
 * the process exits with what main() gets back. Single-threaded.
 */
#pragma once
#include <stdbool.h>
#include "common/secret.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,
	EXIT_AUTH = 4,
	EXIT_FORBIDDEN = 5,
	EXIT_NOT_FOUND = 6,
	EXIT_CONFLICT = 7,
};

#define DEFAULT_SOCKET "/run/vaultd/vaultd.sock"

/* Filled by main() and the common options (cli.h); the token by token_get(). */
struct ctx {
	const char *socket;     /* -s, else $VAULTD_SOCKET, else DEFAULT_SOCKET */
	bool json;              /* --json: the API's JSON on stdout */
	bool token_loaded;      /* token was looked up (it may still be NULL) */
	struct secret *token;   /* bearer token, NUL-terminated; NULL: none */
};
