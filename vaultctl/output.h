/* vaultctl/output.h: what people read (tables, key/value blocks, lines) and
 * what scripts read (--json). Nothing here masks on its own: callers decide
 * what is sensitive (secrets.c).
 *
 * Terminal safety: text from vaultd (paths, names, metadata, credential
 * values, error messages, audit records) is data, and data must never reach
 * a terminal as an escape sequence (finding 4: an unauthenticated caller
 * could get "\x1b]0;...\x07" recorded as a request path, and 'audit tail'
 * printed it to the auditor's terminal). So every human-readable printer here
 * escapes what it prints (out_escape() says how): table cells, kv() keys and
 * values, out_line() and out_fline(), and vaultctl's error(), warning() and
 * usage_error() (msg.h). The rule for callers: a line that carries anything but
 * literal text and numbers is printed through one of those, never with
 * printf(). --json output is JSON with every non-ASCII character escaped
 * (\u00XX), so it holds no control character either. The one raw output is
 * print_value() to a pipe or file (--field, --print-token: for scripts).
 *
 * Single-threaded, like the rest of vaultctl.
 */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>
#include "common/util.h"

#define MASK "********"

enum {
	/* Line feed and tab pass raw: for one value alone on a terminal
	 * (print_value()), where a PEM key should stay readable. Neither
	 * starts an escape sequence; in tables and key/value lines they would
	 * forge rows, so nothing else uses this. */
	OUT_KEEP_NEWLINE = 1u << 0,
};

/* Writes len bytes of s to f, escaped for a terminal:
 *   "\"                                 -> "\\"
 *   C0 controls 0x00-0x1f and DEL 0x7f  -> "\xHH" (so ESC is "\x1b", BEL "\x07")
 *   C1 controls U+0080-U+009F (UTF-8)   -> "\u00HH" (U+009B is a CSI too)
 *   bidi controls U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069
 *                                       -> "\uHHHH" (they reorder what is shown)
 *   a byte that is not part of valid UTF-8 (stray continuation, overlong,
 *   surrogate, beyond U+10FFFF, cut short) -> "\xHH", that byte alone
 * Everything else (printable ASCII, other valid UTF-8) is copied. Hex digits
 * are lower case. The result is valid UTF-8 without control characters
 * (but '\n' and '\t' with OUT_KEEP_NEWLINE). */
void out_safe(FILE *f, const char *s, size_t len, unsigned flags);
/* The same into a malloc()ed NUL-terminated string; NULL if out of memory. */
char *out_escape(const char *s, size_t len, unsigned flags);
/* Columns a terminal gives an escaped string: its code points (out_escape()
 * output holds no control characters; wide characters count as one). */
size_t out_width(const char *escaped);

/* printf-style text, formatted into a buffer that is wiped after use (a
 * revealed value must not linger in the heap) and written escaped, to f; out_fline() and out_line()
 * (stdout) add a newline. Keep the format's literal text free of control
 * characters: it is escaped too. errno is kept for %m. */
void out_vfprintf(FILE *f, const char *fmt, va_list ap) _printf_(2, 0);
void out_fprintf(FILE *f, const char *fmt, ...) _printf_(2, 3);
void out_fline(FILE *f, const char *fmt, ...) _printf_(2, 3);
#define out_line(...) out_fline(stdout, __VA_ARGS__)

/* One value for a script (get --field, login --print-token): the raw bytes
 * and a newline when standard output is not a terminal; on a terminal,
 * escaped with OUT_KEEP_NEWLINE. */
void print_value(const char *s, size_t len);

/* Pretty JSON with a trailing newline; non-ASCII escaped (JSON_ENSURE_ASCII). */
void print_json(const json_t *j);
/* One compact line of JSON (audit export), the same escaping. */
void print_json_line(const json_t *j);

/* A table with up to TABLE_COLS columns, left aligned, two spaces apart. */
#define TABLE_COLS 8
struct table;
struct table *table_new(int ncols, const char *const *headers);
/* Copies the strings, escaped; NULL prints as "-". */
void table_add(struct table *t, const char *const *cells);
void table_print_free(struct table *t);

/* "key:   value" lines, aligned at width; key and value escaped. */
void kv(int width, const char *key, const char *fmt, ...) _printf_(3, 4);

/* A JSON scalar as text ("-" for null or missing; arrays joined by ", ").
 * Returns malloc()ed text, not escaped: print it through the above. */
char *json_text(const json_t *v);
