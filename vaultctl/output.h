/* vaultctl/output.h: what people read (tables, key/value blocks) and what
 * scripts read (--json). Everything goes to stdout; nothing here masks on its
 * own: callers decide what is sensitive (secrets.c).
 */
#pragma once
#include <jansson.h>
#include "vaultctl/vaultctl.h"

#define MASK "********"

/* Pretty JSON with a trailing newline. */
void print_json(const json_t *j);

/* A table with up to TABLE_COLS columns, left aligned, two spaces apart. */
#define TABLE_COLS 8
struct table;
struct table *table_new(int ncols, const char *const *headers);
/* Copies the strings; NULL prints as "-". */
void table_add(struct table *t, const char *const *cells);
void table_print_free(struct table *t);

/* "key:   value" lines, aligned at width. */
void kv(int width, const char *key, const char *fmt, ...) _printf_(3, 4);

/* A JSON scalar as text ("-" for null or missing; arrays joined by ", ").
 * Returns malloc()ed text. */
char *json_text(const json_t *v);
