/* vaultctl/msg.h: messages on standard error, and the progress line they
 * must not land on. The messages are escaped for the terminal like every
 * printer in output.h: quote server text in them freely. errno is kept for
 * %m. Single-threaded, like the rest of vaultctl.
 */
#pragma once
#include <stdbool.h>
#include "common/util.h"

/* Set while a progress line is drawn on standard error (a terminal, see
 * rotate.c): progress_wipe() erases it, and every message below calls it
 * first, so a message never lands on the progress line. */
extern bool progress_drawn;
void progress_wipe(void);

/* Prints "vaultctl: MSG" and a --help hint to stderr (for cmd, or for
 * vaultctl itself when cmd is NULL); returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);
/* Prints "vaultctl: MSG" to stderr; returns EXIT_ERROR. */
int error(const char *fmt, ...) _printf_(1, 2);
/* Prints "vaultctl: warning: MSG" to stderr. */
void warning(const char *fmt, ...) _printf_(1, 2);
