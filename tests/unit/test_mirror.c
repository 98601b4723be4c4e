/* tests/unit/test_mirror.c: the audit mirror's writer thread and its timeout. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/util.h"
#include "vaultd/audit/mirror.h"

struct tmp {
	char dir[64];
	char file[PATH_MAX];            /* dir/audit.jsonl */
	char fifo[PATH_MAX];            /* dir/audit.fifo */
	char link[PATH_MAX];            /* dir/audit.link */
};

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	strcpy(t->dir, "/tmp/test_mirror.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	snprintf(t->file, sizeof(t->file), "%s/audit.jsonl", t->dir);
	snprintf(t->fifo, sizeof(t->fifo), "%s/audit.fifo", t->dir);
	snprintf(t->link, sizeof(t->link), "%s/audit.link", t->dir);
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;

	(void)unlink(t->file);
	(void)unlink(t->fifo);
	(void)unlink(t->link);
	if (rmdir(t->dir) < 0)
		return -1;
	free(t);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int mirror_puts(struct mirror *m, const char *s)
{
	return mirror_write(m, s, strlen(s));
}

/* Once the writer's open() of the FIFO went through (a reader came), read
 * gives EAGAIN while it holds the FIFO open and 0 once it closed it: waits
 * for that, and fails if anything was written meanwhile. */
static void wait_writer_closed(int rfd)
{
	char buf[64];
	ssize_t n;

	for (int i = 0; i < 500; i++) {
		n = read(rfd, buf, sizeof(buf));
		if (n == 0)
			return;
		assert_true(n < 0);     /* an abandoned line reached the FIFO */
		assert_int_equal(errno, EAGAIN);
		sleep_ms(10);
	}
	fail_msg("the mirror writer never closed the FIFO");
}

/* mirror_write() until the writer is no longer stuck (-EBUSY). */
static int write_when_free(struct mirror *m, const char *s)
{
	int r = -EBUSY;

	for (int i = 0; i < 500 && r == -EBUSY; i++) {
		r = mirror_puts(m, s);
		if (r == -EBUSY)
			sleep_ms(10);
	}
	return r;
}

static void test_new_rejects_bad_arguments(void **state)
{
	struct mirror *m = NULL;
	(void)state;

	assert_int_equal(mirror_new("", 1000, &m), -EINVAL);
	assert_int_equal(mirror_new("/tmp/x", 0, &m), -EINVAL);
	assert_null(m);
	mirror_free(NULL);
}

static void test_lines_in_order(void **state)
{
	struct tmp *t = *state;
	struct mirror *m = NULL;
	char buf[256];
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(mirror_new(t->file, 1000, &m), 0);
	assert_int_equal(access(t->file, F_OK), -1);    /* not touched before the first line */
	assert_int_equal(mirror_puts(m, "{\"id\":1}"), 0);
	assert_int_equal(mirror_puts(m, "{\"id\":2}"), 0);
	assert_int_equal(mirror_write(m, "{\"id\":3}xyz", 8), 0);      /* n bytes, not the string */
	assert_int_equal(mirror_puts(m, ""), 0);
	mirror_free(m);

	fd = open(t->file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	assert_string_equal(buf, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n\n");
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Appends to what is there (a rotated file is simply recreated). */
	assert_int_equal(mirror_new(t->file, 1000, &m), 0);
	assert_int_equal(mirror_puts(m, "{\"id\":4}"), 0);
	assert_int_equal(unlink(t->file), 0);
	assert_int_equal(mirror_puts(m, "{\"id\":5}"), 0);
	mirror_free(m);
	fd = open(t->file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"id\":5}\n");
}

static void test_unopenable_path(void **state)
{
	struct tmp *t = *state;
	struct mirror *m = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/missing/audit.jsonl", t->dir);
	assert_int_equal(mirror_new(path, 1000, &m), 0);
	assert_int_equal(mirror_puts(m, "{}"), -ENOENT);
	assert_int_equal(mirror_puts(m, "{}"), -ENOENT);        /* a plain failure leaves it usable */
	mirror_free(m);

	/* Never through a symlink. */
	assert_int_equal(symlink(t->file, t->link), 0);
	assert_int_equal(mirror_new(t->link, 1000, &m), 0);
	assert_int_equal(mirror_puts(m, "{}"), -ELOOP);
	mirror_free(m);
	assert_int_equal(access(t->file, F_OK), -1);
}

/* A FIFO nobody reads: the writer hangs in open(). One caller waits the
 * timeout, the next fails at once, and the abandoned line never arrives. */
static void test_fifo_without_reader(void **state)
{
	struct tmp *t = *state;
	struct mirror *m = NULL;
	char buf[64];
	int64_t t0, dt;
	ssize_t n;
	int rfd;

	assert_int_equal(mkfifo(t->fifo, 0600), 0);
	assert_int_equal(mirror_new(t->fifo, 400, &m), 0);

	t0 = now_ms();
	assert_int_equal(mirror_puts(m, "abandoned"), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 390);
	assert_true(dt < 10000);

	t0 = now_ms();
	assert_int_equal(mirror_puts(m, "refused"), -EBUSY);
	assert_true(now_ms() - t0 < 200);       /* did not wait for the timeout */

	/* A reader frees the writer's open(); it must not write the line its
	 * caller gave up on. */
	rfd = open(t->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rfd >= 0);
	wait_writer_closed(rfd);

	assert_int_equal(write_when_free(m, "{\"after\":1}"), 0);
	n = read(rfd, buf, sizeof(buf));
	assert_int_equal(n, strlen("{\"after\":1}\n"));
	assert_memory_equal(buf, "{\"after\":1}\n", (size_t)n);
	assert_int_equal(read(rfd, buf, sizeof(buf)), 0);      /* nothing else, writer gone */

	mirror_free(m);
	close(rfd);
}

/* Shutdown does not wait for a writer stuck in open(); the writer frees the
 * mirror once it gets out (LeakSanitizer checks that it does). */
static void test_free_while_stuck(void **state)
{
	struct tmp *t = *state;
	struct mirror *m = NULL;
	int64_t t0;
	int rfd;

	assert_int_equal(mkfifo(t->fifo, 0600), 0);
	assert_int_equal(mirror_new(t->fifo, 50, &m), 0);
	assert_int_equal(mirror_puts(m, "abandoned"), -ETIMEDOUT);

	t0 = now_ms();
	mirror_free(m);
	assert_true(now_ms() - t0 < 1000);

	rfd = open(t->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rfd >= 0);
	wait_writer_closed(rfd);
	close(rfd);
	sleep_ms(50);           /* let it reach free() before the leak check */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects_bad_arguments),
		cmocka_unit_test_setup_teardown(test_lines_in_order, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_unopenable_path, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_fifo_without_reader, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_free_while_stuck, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
