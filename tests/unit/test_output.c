/* tests/unit/test_output.c: vaultctl's terminal escaping (vaultctl/output.c,
 * finding 4) and the printers built on it, fed hostile server JSON. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "vaultctl/output.h"

/* out_escape() of exactly n bytes, compared with want. */
static void expect_n(const char *in, size_t n, unsigned flags, const char *want)
{
	char *got = out_escape(in, n, flags);

	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("escaped %zu bytes: got \"%s\", expected \"%s\"", n, got, want);
	free(got);
}

static void expect(const char *in, const char *want)
{
	expect_n(in, strlen(in), 0, want);
}

/* An independent check of what a terminal may receive: valid UTF-8 (RFC
 * 3629), no C0 (but those in allowed), no DEL, no C1 code point. */
static bool terminal_safe(const unsigned char *s, size_t n, const char *allowed)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len;

		if (s[i] < 0x80) {
			if ((s[i] < 0x20 && !(s[i] && strchr(allowed, s[i]))) || s[i] == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0)
			len = 2, cp = s[i] & 0x1f;
		else if ((s[i] & 0xf0) == 0xe0)
			len = 3, cp = s[i] & 0x0f;
		else if ((s[i] & 0xf8) == 0xf0)
			len = 4, cp = s[i] & 0x07;
		else
			return false;
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		i += len;
	}
	return true;
}

/* ---- stdout capture ---- */

static int saved_stdout = -1;
static FILE *capture_file;

static void capture_begin(void)
{
	fflush(stdout);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stdout = dup(STDOUT_FILENO);
	assert_true(saved_stdout >= 0);
	assert_true(dup2(fileno(capture_file), STDOUT_FILENO) >= 0);
}

/* What was written to stdout since capture_begin(); malloc()ed, *ret_len set. */
static char *capture_end(size_t *ret_len)
{
	long n;
	char *buf;

	fflush(stdout);
	assert_true(dup2(saved_stdout, STDOUT_FILENO) >= 0);
	close(saved_stdout);
	n = lseek(fileno(capture_file), 0, SEEK_END);   /* the offset fd 1 shared */
	assert_true(n >= 0);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fileno(capture_file), buf, (size_t)n, 0), n);
	fclose(capture_file);
	*ret_len = (size_t)n;
	return buf;
}

/* ---- the escape function ---- */

static void test_escape_c0_del_backslash(void **state)
{
	char in[2] = { 0 }, want[8];
	(void)state;

	for (int b = 1; b < 0x20; b++) {
		in[0] = (char)b;
		snprintf(want, sizeof(want), "\\x%02x", b);
		expect_n(in, 1, 0, want);
	}
	expect_n("\0", 1, 0, "\\x00");         /* a NUL inside a length-delimited value */
	expect("\x7f", "\\x7f");
	expect("\\", "\\\\");
	expect("a\\x1b", "a\\\\x1b");          /* a literal backslash cannot fake an escape */
	expect("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07");
	expect("line1\nline2\r\t", "line1\\x0aline2\\x0d\\x09");
	/* Printable ASCII is left alone. */
	for (int b = 0x20; b < 0x7f; b++) {
		if (b == '\\')
			continue;
		in[0] = (char)b;
		expect_n(in, 1, 0, in);
	}
	expect("", "");
}

static void test_escape_c1(void **state)
{
	char in[3], want[8];
	(void)state;

	for (unsigned cp = 0x80; cp <= 0x9f; cp++) {
		in[0] = (char)(0xc0 | cp >> 6);
		in[1] = (char)(0x80 | (cp & 0x3f));
		in[2] = '\0';
		snprintf(want, sizeof(want), "\\u%04x", cp);
		expect(in, want);
	}
	expect("a\xc2\x9b" "31mred", "a\\u009b31mred");   /* U+009B: an 8-bit CSI */
	/* From U+00A0 on, text is text. */
	expect("\xc2\xa0", "\xc2\xa0");
	expect("caf\xc3\xa9", "caf\xc3\xa9");
	expect("\xe2\x82\xac 5", "\xe2\x82\xac 5");
	expect("\xf0\x9f\x94\x91 key", "\xf0\x9f\x94\x91 key");
	expect("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");   /* U+10FFFF, the last one */
}

static void test_escape_bidi(void **state)
{
	(void)state;
	expect("acme/\xe2\x80\xae" "txt.exe", "acme/\\u202etxt.exe");
	expect("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", "\\u202a\\u202b\\u202c\\u202d");
	expect("\xe2\x81\xa6\xe2\x81\xa9", "\\u2066\\u2069");
	expect("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", "\\u200e\\u200f\\u061c");
	expect("\xe2\x80\x8d", "\xe2\x80\x8d");          /* U+200D (ZWJ) is not a control */
}

static void test_escape_invalid_utf8(void **state)
{
	(void)state;
	expect("\x80", "\\x80");                        /* stray continuation */
	expect("\xbf" "a", "\\xbfa");
	expect("\xc0\x80", "\\xc0\\x80");               /* overlong NUL */
	expect("\xc1\xbf", "\\xc1\\xbf");
	expect("\xe0\x80\xaf", "\\xe0\\x80\\xaf");      /* overlong '/' */
	expect("\xe0\x9f\xbf", "\\xe0\\x9f\\xbf");
	expect("\xed\xa0\x80", "\\xed\\xa0\\x80");      /* a surrogate, U+D800 */
	expect("\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf");
	expect("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");  /* beyond U+10FFFF */
	expect("\xf5\xff\xfe", "\\xf5\\xff\\xfe");
	expect("ok\xc3", "ok\\xc3");                    /* cut short at the end */
	expect("\xe2\x82", "\\xe2\\x82");
	expect("\xc3" "A", "\\xc3A");                   /* the next byte starts over */
	expect("\xe2\x82\xc3\xa9", "\\xe2\\x82\xc3\xa9");
	/* An escape sequence hidden behind a bad lead byte is still caught. */
	expect("\xc3\x1b[2J", "\\xc3\\x1b[2J");
	/* Length-delimited: the byte after n is never read (ASan would tell). */
	{
		char *p = malloc(2);

		assert_non_null(p);
		memcpy(p, "\xe2\x82", 2);
		expect_n(p, 2, 0, "\\xe2\\x82");
		free(p);
	}
}

static void test_keep_newline(void **state)
{
	(void)state;
	expect_n("a\nb\tc", 5, OUT_KEEP_NEWLINE, "a\nb\tc");
	expect_n("\r\x1b[K\x07\x0b\x0c", 7, OUT_KEEP_NEWLINE, "\\x0d\\x1b[K\\x07\\x0b\\x0c");
	expect_n("-----BEGIN KEY-----\nabc\n", 24, OUT_KEEP_NEWLINE, "-----BEGIN KEY-----\nabc\n");
}

/* Every string of one and two bytes, and every byte before and after each
 * multi-byte lead: the output is always terminal-safe, and valid UTF-8 that
 * needs no escaping comes back unchanged. */
static void test_every_short_input_is_safe(void **state)
{
	unsigned char in[4];
	(void)state;

	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			char *out;

			in[0] = (unsigned char)a;
			in[1] = (unsigned char)b;
			for (size_t n = 1; n <= 2; n++) {
				out = out_escape((const char *)in, n, 0);
				assert_non_null(out);
				if (!terminal_safe((const unsigned char *)out, strlen(out), ""))
					fail_msg("escaping %02x %02x (n %zu) gave unsafe output", a, b, n);
				free(out);
				out = out_escape((const char *)in, n, OUT_KEEP_NEWLINE);
				assert_non_null(out);
				assert_true(terminal_safe((const unsigned char *)out, strlen(out), "\n\t"));
				free(out);
			}
		}
	}
	/* Three-byte sequences from E0 to EF with every second byte. */
	for (unsigned a = 0xe0; a <= 0xef; a++)
		for (unsigned b = 0; b < 256; b++) {
			char *out;

			in[0] = (unsigned char)a;
			in[1] = (unsigned char)b;
			in[2] = 0x80;
			out = out_escape((const char *)in, 3, 0);
			assert_non_null(out);
			assert_true(terminal_safe((const unsigned char *)out, strlen(out), ""));
			free(out);
		}
}

static void test_out_safe_same_as_out_escape(void **state)
{
	static const char in[] = "acme/\x1b]0;x\x07\xc2\x9b\xff\\ok\xc3\xa9";
	char *mem = NULL, *esc;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	(void)state;

	assert_non_null(f);
	out_safe(f, in, sizeof(in) - 1, 0);
	assert_int_equal(fclose(f), 0);
	esc = out_escape(in, sizeof(in) - 1, 0);
	assert_string_equal(mem, esc);
	assert_string_equal(esc, "acme/\\x1b]0;x\\x07\\u009b\\xff\\\\ok\xc3\xa9");
	assert_int_equal(out_width("ok\xc3\xa9"), 3);
	free(mem);
	free(esc);
}

static void test_out_fline_keeps_errno(void **state)
{
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	(void)state;

	assert_non_null(f);
	errno = ENOENT;
	out_fline(f, "open '%s': %m", "a\x1b" "b");
	assert_int_equal(errno, ENOENT);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(mem, "open 'a\\x1bb': No such file or directory\n");
	free(mem);
}

/* ---- the printers, fed what a hostile request can get recorded ---- */

/* An audit page as vaultd would send it for finding 4's request, plus a
 * metadata object with hostile keys and values and a C1 CSI. */
static const char hostile_json[] =
	"{\"records\": [{\"id\": 7, \"time\": \"2026-11-26T10:00:00Z\", \"principal\": \"anonymous\","
	" \"action\": \"secret.read\", \"path\": \"acme/\\u001b[2J\\u001b]0;owned\\u0007\","
	" \"result\": \"denied\", \"status\": 401}],"
	" \"metadata\": {\"owner\\u001b[31m\": \"noc\\u009b1;1H\\u0007\", \"note\": \"a\\\\b\"},"
	" \"message\": \"no such path: acme/\\u001b[5m\"}";

static void assert_no_raw_controls(const char *out, size_t n)
{
	if (memchr(out, 0x1b, n) || memchr(out, 0x07, n) || memmem(out, n, "\xc2\x9b", 2))
		fail_msg("raw control character in output: \"%s\"", out);
	assert_true(terminal_safe((const unsigned char *)out, n, "\n"));
}

static void test_table_of_hostile_records(void **state)
{
	static const char *const head[] = { "ID", "TIME", "PRINCIPAL", "ACTION", "PATH", "RESULT", "STATUS" };
	json_t *j = json_loads(hostile_json, 0, NULL), *rec;
	struct table *t;
	char *out;
	size_t n, i;
	(void)state;

	assert_non_null(j);
	capture_begin();
	t = table_new(7, head);
	json_array_foreach(json_object_get(j, "records"), i, rec) {
		char *id = json_text(json_object_get(rec, "id")), *time = json_text(json_object_get(rec, "time"));
		char *pr = json_text(json_object_get(rec, "principal")), *ac = json_text(json_object_get(rec, "action"));
		char *pa = json_text(json_object_get(rec, "path")), *re = json_text(json_object_get(rec, "result"));
		char *st = json_text(json_object_get(rec, "status"));
		const char *row[] = { id, time, pr, ac, pa, re, st };

		table_add(t, row);
		free(id), free(time), free(pr), free(ac), free(pa), free(re), free(st);
	}
	table_print_free(t);
	out = capture_end(&n);
	assert_no_raw_controls(out, n);
	assert_non_null(strstr(out, "acme/\\x1b[2J\\x1b]0;owned\\x07"));
	/* Still one header line and one row: nothing forged a line. */
	{
		size_t lines = 0;

		for (size_t k = 0; k < n; k++)
			lines += out[k] == '\n';
		assert_int_equal(lines, 2);
		assert_int_equal(out[n - 1], '\n');
	}
	free(out);
	json_decref(j);
}

static void test_kv_and_lines_of_hostile_metadata(void **state)
{
	json_t *j = json_loads(hostile_json, 0, NULL), *v;
	const char *key;
	char *out;
	size_t n;
	(void)state;

	assert_non_null(j);
	capture_begin();
	json_object_foreach(json_object_get(j, "metadata"), key, v)
		out_line("  %s = %s", key, json_string_value(v));
	json_object_foreach(json_object_get(j, "metadata"), key, v)
		kv(12, key, "%s", json_string_value(v));
	out = capture_end(&n);
	assert_no_raw_controls(out, n);
	assert_non_null(strstr(out, "  owner\\x1b[31m = noc\\u009b1;1H\\x07\n"));
	assert_non_null(strstr(out, "  note = a\\\\b\n"));
	/* Aligned on what the terminal shows (the escaped key is 13 wide). */
	assert_non_null(strstr(out, "\nowner\\x1b[31m: noc\\u009b1;1H\\x07\n"));
	assert_non_null(strstr(out, "\nnote:        a\\\\b\n"));
	free(out);
	json_decref(j);
}

/* --json stays JSON, and ASCII: jansson writes C0 as \u00XX (or \n, \t...)
 * and, with JSON_ENSURE_ASCII, DEL's neighbours U+0080.. as \u00XX too. */
static void test_json_output_escaped(void **state)
{
	json_t *j = json_loads(hostile_json, 0, NULL), *back;
	char *out;
	size_t n;
	(void)state;

	assert_non_null(j);
	json_object_set_new(j, "del", json_string("x\x7fy"));
	capture_begin();
	print_json(j);
	print_json_line(json_object_get(j, "metadata"));
	out = capture_end(&n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] >= 0x80 || ((unsigned char)out[i] < 0x20 && out[i] != '\n'))
			fail_msg("byte %zu of the JSON output is 0x%02x", i, (unsigned char)out[i]);
	assert_non_null(strcasestr(out, "acme/\\u001b[2J\\u001b]0;owned\\u0007"));
	assert_non_null(strcasestr(out, "noc\\u009b1;1H\\u0007"));
	/* The same document comes back (the first of the two). */
	back = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	assert_non_null(back);
	assert_true(json_equal(back, j));
	json_decref(back);
	free(out);
	json_decref(j);
}

/* print_value(): raw into a file (scripts), escaped on a terminal. */
static void test_print_value_raw_or_escaped(void **state)
{
	static const char value[] = "-----BEGIN\x1b]0;x\x07\nline\r";
	struct termios tio;
	char *out, buf[256], *slave_name;
	size_t n;
	ssize_t k;
	int master, slave;
	(void)state;

	capture_begin();
	print_value(value, sizeof(value) - 1);
	out = capture_end(&n);
	assert_int_equal(n, sizeof(value));
	assert_memory_equal(out, value, sizeof(value) - 1);
	assert_int_equal(out[n - 1], '\n');
	free(out);

	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0)
		fail_msg("posix_openpt: no pseudo-terminal for the test (the suite needs /dev/ptmx)");
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	slave_name = ptsname(master);
	assert_non_null(slave_name);
	slave = open(slave_name, O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	assert_int_equal(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);                /* no "\n" -> "\r\n" in the way */
	assert_int_equal(tcsetattr(slave, TCSANOW, &tio), 0);
	fflush(stdout);
	saved_stdout = dup(STDOUT_FILENO);
	assert_true(dup2(slave, STDOUT_FILENO) >= 0);
	print_value(value, sizeof(value) - 1);
	fflush(stdout);
	assert_true(dup2(saved_stdout, STDOUT_FILENO) >= 0);
	close(saved_stdout);
	k = read(master, buf, sizeof(buf) - 1);
	assert_true(k > 0);
	buf[k] = '\0';
	assert_string_equal(buf, "-----BEGIN\\x1b]0;x\\x07\nline\\x0d\n");
	close(slave);
	close(master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_c0_del_backslash),
		cmocka_unit_test(test_escape_c1),
		cmocka_unit_test(test_escape_bidi),
		cmocka_unit_test(test_escape_invalid_utf8),
		cmocka_unit_test(test_keep_newline),
		cmocka_unit_test(test_every_short_input_is_safe),
		cmocka_unit_test(test_out_safe_same_as_out_escape),
		cmocka_unit_test(test_out_fline_keeps_errno),
		cmocka_unit_test(test_table_of_hostile_records),
		cmocka_unit_test(test_kv_and_lines_of_hostile_metadata),
		cmocka_unit_test(test_json_output_escaped),
		cmocka_unit_test(test_print_value_raw_or_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
