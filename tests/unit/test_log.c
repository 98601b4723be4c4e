/* tests/unit/test_log.c: the logger's output shape and its guarantees. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/err.h"
#include "common/log.h"

static int pipefd[2];

static int setup(void **state)
{
	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	log_set_fd(pipefd[1]);
	log_set_max_level(LOG_INFO);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd(2);
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

static void read_line(char *buf, size_t size)
{
	ssize_t n = read(pipefd[0], buf, size - 1);
	assert_true(n > 0);
	buf[n] = '\0';
}

static void test_line_shape(void **state)
{
	char buf[4096];
	(void)state;

	log_error("cannot open '%s'", "acme/rmm/tactical");
	read_line(buf, sizeof(buf));
	assert_string_equal(buf, "error: test_line_shape: cannot open 'acme/rmm/tactical'\n");
}

static void test_errno_appended_and_returned(void **state)
{
	char buf[4096];
	int r;
	(void)state;

	r = log_error_errno(-VLT_E_HSM_PIN, "login to token '%s'", "vaultd");
	assert_int_equal(r, -VLT_E_HSM_PIN);
	read_line(buf, sizeof(buf));
	assert_non_null(strstr(buf, "login to token 'vaultd': the HSM token refused the PIN\n"));
	r = log_error_errno(-ENOENT, "open");
	read_line(buf, sizeof(buf));
	assert_non_null(strstr(buf, "open: No such file or directory\n"));
}

static void test_level_filter(void **state)
{
	char buf[4096];
	(void)state;

	log_debug("hidden");
	log_info("shown");
	read_line(buf, sizeof(buf));
	assert_string_equal(buf, "info: test_level_filter: shown\n");
}

static void test_control_chars_neutralised(void **state)
{
	char buf[4096];
	(void)state;

	/* A name with a newline cannot forge a second log line. */
	log_warning("user '%s'", "eve\nerror: forged");
	read_line(buf, sizeof(buf));
	assert_string_equal(buf, "warning: test_control_chars_neutralised: user 'eve?error: forged'\n");
}

static void test_truncation_keeps_newline(void **state)
{
	char big[5000], buf[4096];
	(void)state;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	read_line(buf, sizeof(buf));
	assert_int_equal(strlen(buf), 2047);
	assert_int_equal(buf[2046], '\n');
}

static void test_strerror_covers_all(void **state)
{
	(void)state;
	for (int e = VLT_E_FIRST + 1; e < VLT_E_LAST; e++)
		assert_string_not_equal(vlt_strerror(-e), "unknown error");
	assert_string_equal(vlt_strerror(-(VLT_E_LAST + 5)), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_shape),
		cmocka_unit_test(test_errno_appended_and_returned),
		cmocka_unit_test(test_level_filter),
		cmocka_unit_test(test_control_chars_neutralised),
		cmocka_unit_test(test_truncation_keeps_newline),
		cmocka_unit_test(test_strerror_covers_all),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
