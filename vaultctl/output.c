/* vaultctl/output.c: see output.h. */
#include <stdarg.h>
#include <stdio.h>
#include "common/json.h"
#include "vaultctl/output.h"

void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
}

struct table {
	int ncols;
	size_t nrows, cap;
	char **cells;           /* nrows * ncols, row 0 the headers */
};

struct table *table_new(int ncols, const char *const *headers)
{
	struct table *t = calloc(1, sizeof(*t));

	if (!t)
		abort();
	t->ncols = ncols < TABLE_COLS ? ncols : TABLE_COLS;
	table_add(t, headers);
	return t;
}

void table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = reallocarray(t->cells, t->cap, (size_t)t->ncols * sizeof(char *));
		if (!t->cells)
			abort();
	}
	for (int i = 0; i < t->ncols; i++) {
		char *c = strdup(cells[i] ? cells[i] : "-");
		if (!c)
			abort();
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = c;
	}
	t->nrows++;
}

void table_print_free(struct table *t)
{
	size_t w[TABLE_COLS] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (int i = 0; i < t->ncols; i++) {
			size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		/* Blank cells at the end of a row: no padding, no trailing blanks. */
		int last = t->ncols - 1;
		while (last > 0 && !*t->cells[r * (size_t)t->ncols + (size_t)last])
			last--;
		for (int i = 0; i <= last; i++) {
			const char *c = t->cells[r * (size_t)t->ncols + (size_t)i];
			if (i == last)
				printf("%s\n", c);
			else
				printf("%-*s  ", (int)w[i], c);
		}
	}
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void kv(int width, const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%s:%*s", key, width - (int)strlen(key), "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

char *json_text(const json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v))
		return asprintf(&s, "%lld", (long long)json_integer_value(v)) < 0 ? NULL : s;
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "yes" : "no");
	if (json_is_array(v) && json_array_size(v) == 0)
		return strdup("-");
	if (json_is_array(v)) {
		size_t i, len = 1;
		json_t *e;
		char *out;

		json_array_foreach(v, i, e) {
			_cleanup_free_ char *t = json_text(e);
			len += (t ? strlen(t) : 0) + 2;
		}
		out = calloc(1, len + 1);
		if (!out)
			return NULL;
		json_array_foreach(v, i, e) {
			_cleanup_free_ char *t = json_text(e);
			if (i)
				strcat(out, ", ");
			strcat(out, t ? t : "");
		}
		return out;
	}
	{
		/* json_dumps() memory belongs to the wiping allocator: copy it out. */
		char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		s = d ? strdup(d) : NULL;
		json_secure_free(d);
		return s;
	}
}
