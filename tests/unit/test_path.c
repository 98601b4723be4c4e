/* tests/unit/test_path.c: secret paths and principal names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "common/path.h"

#define R_EMPTY "path is empty"
#define R_SLASH "leading or trailing '/'"
#define R_EMPTY_SEG "empty segment"
#define R_DOTS "'.' and '..' are not allowed as segments"
#define R_MANY "more than 8 segments"
#define R_LONG_SEG "segment longer than 64 characters"
#define R_LONG_PATH "path is longer than 520 characters"
#define R_SECRET "a secret path needs a tenant and at least one more segment"
#define R_FEW "path has too few segments"
#define R_CHAR(n) "segment " #n " contains a character outside [A-Za-z0-9._-]"

static void expect(const char *path, unsigned min, const char *reason)
{
	const char *r = path_check(path, min);

	if (!reason) {
		if (r)
			fail_msg("'%s' (min %u): unexpected \"%s\"", path, min, r);
		return;
	}
	if (!r)
		fail_msg("'%s' (min %u): accepted, expected \"%s\"", path, min, reason);
	if (strcmp(r, reason) != 0)
		fail_msg("'%s' (min %u): got \"%s\", expected \"%s\"", path, min, r, reason);
}

/* n segments of 'seg' joined by '/', into buf. */
static const char *join(char *buf, size_t size, const char *seg, unsigned n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		int k = snprintf(buf + off, size - off, "%s%s", i ? "/" : "", seg);
		assert_true(k > 0 && (size_t)k < size - off);
		off += (size_t)k;
	}
	return buf;
}

static void test_valid(void **state)
{
	char buf[1024], seg64[PATH_SEGMENT_MAX + 1];
	(void)state;

	memset(seg64, 'a', PATH_SEGMENT_MAX);
	seg64[PATH_SEGMENT_MAX] = '\0';

	expect("acme/rmm", 2, NULL);
	expect("acme/rmm/tactical", 2, NULL);
	expect("Acme-Corp_1.0/x", 2, NULL);
	expect("a/b", 2, NULL);
	expect("acme", 1, NULL);
	expect("acme/rmm", 1, NULL);
	expect("acme", 0, NULL);
	expect("...", 1, NULL);                 /* only "." and ".." are special */
	expect("acme/.../x", 2, NULL);
	expect("acme/.hidden/x", 2, NULL);
	expect("acme/x..y", 2, NULL);
	expect("-/_", 2, NULL);
	expect(join(buf, sizeof(buf), "s", 8), 2, NULL);
	expect(join(buf, sizeof(buf), seg64, 8), 2, NULL);      /* longest: 519 bytes */
	assert_int_equal(strlen(buf), 8 * 64 + 7);
	expect(join(buf, sizeof(buf), "s", 8), 8, NULL);
}

static void test_structure(void **state)
{
	(void)state;

	expect(NULL, 1, R_EMPTY);
	expect("", 1, R_EMPTY);
	expect("", 2, R_EMPTY);
	expect("/", 1, R_SLASH);
	expect("/acme/x", 2, R_SLASH);
	expect("acme/x/", 2, R_SLASH);
	expect("/acme", 1, R_SLASH);
	expect("//", 1, R_SLASH);
	expect("acme//x", 2, R_EMPTY_SEG);
	expect("acme/x//y", 2, R_EMPTY_SEG);
}

static void test_dots(void **state)
{
	(void)state;

	expect("acme/./x", 2, R_DOTS);
	expect("acme/../x", 2, R_DOTS);
	expect("acme/x/..", 2, R_DOTS);
	expect("./x", 2, R_DOTS);
	expect("..", 1, R_DOTS);
	expect(".", 1, R_DOTS);
	expect("../acme/x", 2, R_DOTS);
}

static void test_characters(void **state)
{
	(void)state;

	expect("acme/%2e%2e/x", 2, R_CHAR(2));  /* no percent-decoding */
	expect("acme/%2e", 2, R_CHAR(2));
	expect("ac me/x", 2, R_CHAR(1));
	expect("acme/x y", 2, R_CHAR(2));
	expect("acme/x\ty", 2, R_CHAR(2));
	expect("acme/x\n", 2, R_CHAR(2));
	expect("acme/caf\xc3\xa9", 2, R_CHAR(2));       /* UTF-8 é */
	expect("acme/\xff", 2, R_CHAR(2));
	expect("\xe2\x80\x8b" "acme/x", 2, R_CHAR(1));  /* zero-width space */
	expect("acme\\x/y", 2, R_CHAR(1));
	expect("acme/x:y", 2, R_CHAR(2));
	expect("acme/x*", 2, R_CHAR(2));
	expect("acme/x?list=1", 2, R_CHAR(2));
	expect("a/b/c/d/e/f/g/h!", 2, R_CHAR(8));
	expect("a/b/c+", 2, R_CHAR(3));
	/* The first problem from the left is the one reported. */
	expect("a b/../", 2, R_SLASH);
	expect("a b/..", 2, R_CHAR(1));
	expect("../a b", 2, R_DOTS);
}

static void test_limits(void **state)
{
	char buf[2048], seg65[PATH_SEGMENT_MAX + 2];
	(void)state;

	memset(seg65, 'a', PATH_SEGMENT_MAX + 1);
	seg65[PATH_SEGMENT_MAX + 1] = '\0';

	expect(join(buf, sizeof(buf), "s", 9), 2, R_MANY);
	expect(join(buf, sizeof(buf), "s", 9), 1, R_MANY);
	expect("a/b/c/d/e/f/g/h/i j", 2, R_MANY);      /* the count is hit first */
	expect(seg65, 1, R_LONG_SEG);
	snprintf(buf, sizeof(buf), "acme/%s", seg65);
	expect(buf, 2, R_LONG_SEG);
	snprintf(buf, sizeof(buf), "acme/%s/x", seg65);
	expect(buf, 2, R_LONG_SEG);

	/* Past PATH_MAX_LEN the path is refused before its segments are read. */
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	expect(buf, 1, R_LONG_PATH);
	buf[PATH_MAX_LEN] = '\0';
	expect(buf, 1, R_LONG_SEG);
	buf[PATH_MAX_LEN] = 'a';
	buf[PATH_MAX_LEN + 1] = '\0';
	expect(buf, 1, R_LONG_PATH);
}

static void test_min_segments(void **state)
{
	(void)state;

	expect("acme", 2, R_SECRET);
	expect("acme", 1, NULL);
	expect("acme/x", 3, R_FEW);
	expect("a/b/c/d/e/f/g/h", 9, R_FEW);
	/* Bad input is reported as such, not as too short. */
	expect("ac me", 2, R_CHAR(1));
	expect("..", 2, R_DOTS);
}

static void test_tenant(void **state)
{
	char t[PATH_SEGMENT_MAX + 1], seg64[PATH_SEGMENT_MAX + 1], buf[256];
	(void)state;

	assert_int_equal(path_tenant("acme/rmm/tactical", t), 0);
	assert_string_equal(t, "acme");
	assert_int_equal(path_tenant("acme", t), 0);
	assert_string_equal(t, "acme");

	memset(seg64, 'z', PATH_SEGMENT_MAX);
	seg64[PATH_SEGMENT_MAX] = '\0';
	snprintf(buf, sizeof(buf), "%s/x", seg64);
	assert_int_equal(path_tenant(buf, t), 0);
	assert_string_equal(t, seg64);

	/* Invalid paths leave ret untouched. */
	strcpy(t, "unchanged");
	assert_int_equal(path_tenant("acme/../x", t), -EINVAL);
	assert_int_equal(path_tenant("/acme/x", t), -EINVAL);
	assert_int_equal(path_tenant("", t), -EINVAL);
	assert_int_equal(path_tenant(NULL, t), -EINVAL);
	assert_int_equal(path_tenant("a c/x", t), -EINVAL);
	assert_string_equal(t, "unchanged");
}

static void test_name_valid(void **state)
{
	char buf[PATH_SEGMENT_MAX + 2];
	(void)state;

	assert_true(name_valid("alice"));
	assert_true(name_valid("a"));
	assert_true(name_valid("7"));
	assert_true(name_valid("rmm-read"));
	assert_true(name_valid("svc.backup_2"));
	assert_true(name_valid("A.."));

	assert_false(name_valid(NULL));
	assert_false(name_valid(""));
	assert_false(name_valid("."));
	assert_false(name_valid(".."));
	assert_false(name_valid(".alice"));
	assert_false(name_valid("-alice"));
	assert_false(name_valid("_alice"));
	assert_false(name_valid("al ice"));
	assert_false(name_valid("alice/bob"));
	assert_false(name_valid("alice\n"));
	assert_false(name_valid("al%69ce"));
	assert_false(name_valid("j\xc3\xb6rg"));
	assert_false(name_valid("\xc3\xa9"));

	memset(buf, 'n', PATH_SEGMENT_MAX);
	buf[PATH_SEGMENT_MAX] = '\0';
	assert_true(name_valid(buf));
	buf[PATH_SEGMENT_MAX] = 'n';
	buf[PATH_SEGMENT_MAX + 1] = '\0';
	assert_false(name_valid(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_dots),
		cmocka_unit_test(test_characters),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_min_segments),
		cmocka_unit_test(test_tenant),
		cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
