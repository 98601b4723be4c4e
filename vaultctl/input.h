/* vaultctl/input.h: secrets in, without argv or echo.
 * field=value, field=@file and field=- (stdin); passphrase files; prompts on
 * the controlling terminal with echo off (termios), restored on SIGINT.
 * Every value lands in a struct secret, NUL-terminated (len excludes the NUL).
 */
#pragma once
#include "vaultctl/ctx.h"

#define VALUE_MAX (256u * 1024)         /* the daemon's limit on a secret's data */
#define PASSPHRASE_MAX 1024

struct field {
	char *name;
	struct secret *value;
	bool literal;           /* came from argv: may now be in shell history */
};
void field_clear(struct field *f);

/* Parses "name=value", "name=@file" or "name=-". *stdin_used guards against
 * reading stdin twice. EXIT_OK, EXIT_USAGE (malformed) or EXIT_ERROR (I/O). */
int field_parse(const char *arg, bool *stdin_used, struct field *ret);

/* Reads a whole file ("-": stdin) of at most max bytes, one trailing newline
 * stripped. EXIT_OK or EXIT_ERROR after saying why. */
int read_value_file(const char *path, size_t max, struct secret **ret);

/* Whether we can prompt: a controlling terminal exists. */
bool can_prompt(void);
/* Prompts on /dev/tty; echo off unless echo. EXIT_OK or EXIT_ERROR. */
int prompt(const char *text, bool echo, size_t max, struct secret **ret);

/* A passphrase from file (if given) or a prompt; confirm asks twice (new
 * passphrases). what names it in messages ("passphrase for alice"). */
int get_passphrase(const char *file, bool confirm, const char *what, struct secret **ret);
/* Asks "yes/no" on the terminal; true only for y or yes. */
bool confirm(const char *question);
