/* vaultctl/output.c: see output.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sodium.h>
#include <unistd.h>
#include "common/json.h"
#include "vaultctl/output.h"

#define ESC_MAX 8               /* "\u202e" and its NUL */

/* The next unit of s[0..len) (len >= 1): returns how many bytes it takes and
 * leaves in esc what to print instead, or "" to print the bytes as they are.
 * UTF-8 is decoded by the table of RFC 3629, section 4, so overlong forms,
 * surrogates and code points beyond U+10FFFF are invalid bytes. */
static size_t next_unit(const unsigned char *s, size_t len, unsigned flags, char esc[ESC_MAX])
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	uint32_t cp;
	size_t n, i;

	esc[0] = '\0';
	if (b < 0x80) {
		if (b == '\\')
			memcpy(esc, "\\\\", 3);
		else if ((b < 0x20 || b == 0x7f) && !((flags & OUT_KEEP_NEWLINE) && (b == '\n' || b == '\t')))
			(void)snprintf(esc, ESC_MAX, "\\x%02x", b);
		return 1;
	}
	if (b >= 0xc2 && b <= 0xdf)
		n = 2;
	else if (b == 0xe0)
		n = 3, lo = 0xa0;
	else if (b >= 0xe1 && b <= 0xef)
		n = 3, hi = b == 0xed ? 0x9f : 0xbf;
	else if (b == 0xf0)
		n = 4, lo = 0x90;
	else if (b >= 0xf1 && b <= 0xf3)
		n = 4;
	else if (b == 0xf4)
		n = 4, hi = 0x8f;
	else
		goto invalid;           /* a continuation byte, 0xc0, 0xc1, 0xf5-0xff */
	if (len < n || s[1] < lo || s[1] > hi)
		goto invalid;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			goto invalid;
	cp = b & (0xffu >> (n + 1));
	for (i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		(void)snprintf(esc, ESC_MAX, "\\u%04x", (unsigned)cp);
	return n;
invalid:
	/* Only this byte: the next one may start a valid character. */
	(void)snprintf(esc, ESC_MAX, "\\x%02x", b);
	return 1;
}

/* Runs of bytes to copy and escapes, in order, to emit(). */
static void escape(const char *s, size_t len, unsigned flags, void (*emit)(void *, const char *, size_t),
		   void *userdata)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start = 0;
	char esc[ESC_MAX];

	while (i < len) {
		size_t n = next_unit(p + i, len - i, flags, esc);

		if (esc[0]) {
			if (i > start)
				emit(userdata, s + start, i - start);
			emit(userdata, esc, strlen(esc));
			start = i + n;
		}
		i += n;
	}
	if (i > start)
		emit(userdata, s + start, i - start);
}

static void emit_file(void *userdata, const char *p, size_t n)
{
	(void)fwrite(p, 1, n, userdata);
}

void out_safe(FILE *f, const char *s, size_t len, unsigned flags)
{
	escape(s, len, flags, emit_file, f);
}

struct buf {
	char *p;
	size_t len;
};

static void emit_buf(void *userdata, const char *p, size_t n)
{
	struct buf *b = userdata;

	memcpy(b->p + b->len, p, n);
	b->len += n;
}

char *out_escape(const char *s, size_t len, unsigned flags)
{
	struct buf b = { 0 };

	/* At most 4 bytes out for each byte in ("\xHH"; "\u0080" is 6 for 2). */
	if (len > (SIZE_MAX - 1) / 4 || !(b.p = malloc(len * 4 + 1)))
		return NULL;
	escape(s, len, flags, emit_buf, &b);
	b.p[b.len] = '\0';
	return b.p;
}

size_t out_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void out_vfprintf(FILE *f, const char *fmt, va_list ap)
{
	int saved = errno, n;
	va_list aq;
	char *p;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0 || !(p = malloc((size_t)n + 1))) {
		fputs("[vaultctl: out of memory]", f);
		return;
	}
	errno = saved;
	(void)vsnprintf(p, (size_t)n + 1, fmt, ap);
	out_safe(f, p, (size_t)n, 0);
	sodium_memzero(p, (size_t)n);
	free(p);
	errno = saved;
}

void out_fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vfprintf(f, fmt, ap);
	va_end(ap);
}

void out_fline(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

void print_value(const char *s, size_t len)
{
	if (isatty(STDOUT_FILENO))
		out_safe(stdout, s, len, OUT_KEEP_NEWLINE);
	else
		(void)fwrite(s, 1, len, stdout);
	putchar('\n');
}

void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	putchar('\n');
}

void print_json_line(const json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	putchar('\n');
}

struct table {
	int ncols;
	size_t nrows, cap;
	char **cells;           /* nrows * ncols, row 0 the headers; escaped */
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
		const char *v = cells[i] ? cells[i] : "-";
		char *c = out_escape(v, strlen(v), 0);
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
			size_t n = out_width(t->cells[r * (size_t)t->ncols + (size_t)i]);
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
			fputs(c, stdout);
			if (i == last)
				putchar('\n');
			else
				printf("%*s  ", (int)(w[i] - out_width(c)), "");
		}
	}
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void kv(int width, const char *key, const char *fmt, ...)
{
	_cleanup_free_ char *k = out_escape(key, strlen(key), 0);
	size_t kw = k ? out_width(k) : 0;
	va_list ap;

	fputs(k ? k : "?", stdout);
	printf(":%*s", width - (int)kw, "");     /* as before: a longer key still gets |n| blanks */
	va_start(ap, fmt);
	out_vfprintf(stdout, fmt, ap);
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
