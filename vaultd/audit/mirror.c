/* vaultd/audit/mirror.c: see mirror.h.
 *
 * The caller's wait is bounded, the writer's system calls are not: nothing
 * interrupts an open() on a hung NFS mount or on a FIFO without a reader. So
 * at most one line is in flight; a caller that gives up marks it abandoned
 * and later callers fail fast (-EBUSY) until the writer is back. The writer
 * looks at the mark once open() returns, so in the usual case, a writer stuck
 * in open(), the record of a request refused for it is not written later.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/util.h"
#include "vaultd/audit/mirror.h"

struct mirror {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;         /* the writer waits for a line or stop */
	pthread_cond_t done_cv;         /* callers wait for their line (CLOCK_MONOTONIC) */
	pthread_t thread;
	char *path;
	unsigned timeout_ms;
	char *line;                     /* handed over, not yet taken by the writer */
	size_t len;                     /* with the '\n' */
	uint64_t handed, done;          /* sequence numbers of lines */
	int result;                     /* of line number done */
	bool busy;                      /* a line is handed over and not finished */
	bool abandoned;                 /* ... and its caller has given up on it */
	bool stop;
	bool orphaned;                  /* mirror_free() left: the writer frees */
};

static void mirror_destroy(struct mirror *m)
{
	pthread_cond_destroy(&m->work_cv);
	pthread_cond_destroy(&m->done_cv);
	pthread_mutex_destroy(&m->mu);
	free(m->line);
	free(m->path);
	free(m);
}

static bool given_up(struct mirror *m)
{
	bool a;

	pthread_mutex_lock(&m->mu);
	a = m->abandoned || m->orphaned;
	pthread_mutex_unlock(&m->mu);
	return a;
}

/* Called without the lock: this is where the writer may hang. */
static int write_line(struct mirror *m, const char *line, size_t len)
{
	ssize_t w;
	int fd, r = 0;

	if (given_up(m))
		return -ETIMEDOUT;
	/* No O_NONBLOCK: a FIFO's slow reader is waited for like a slow disk,
	 * bounded by the caller's timeout rather than failing at once. */
	fd = open(m->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (given_up(m))
		r = -ETIMEDOUT;
	else {
		/* One write(2), so concurrent appenders never interleave a line. */
		w = write(fd, line, len);
		if (w < 0)
			r = -errno;
		else if ((size_t)w != len)
			r = -EIO;
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

static void *writer_main(void *userdata)
{
	struct mirror *m = userdata;
	bool orphaned;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		char *line;
		size_t len;
		uint64_t seq;
		int r;

		while (!m->line && !m->stop)
			pthread_cond_wait(&m->work_cv, &m->mu);
		if (!m->line)
			break;
		line = TAKE_PTR(m->line);
		len = m->len;
		seq = m->handed;
		pthread_mutex_unlock(&m->mu);

		r = write_line(m, line, len);
		free(line);

		pthread_mutex_lock(&m->mu);
		m->result = r;
		m->done = seq;
		m->busy = m->abandoned = false;
		pthread_cond_broadcast(&m->done_cv);
		if (m->orphaned)
			break;
	}
	orphaned = m->orphaned;
	pthread_mutex_unlock(&m->mu);
	if (orphaned)
		mirror_destroy(m);
	return NULL;
}

int mirror_new(const char *path, unsigned timeout_ms, struct mirror **ret)
{
	struct mirror *m;
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	if (!path || !*path || timeout_ms == 0)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->path = strdup(path);
	if (!m->path) {
		free(m);
		return -ENOMEM;
	}
	m->timeout_ms = timeout_ms;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->work_cv, NULL);
	pthread_condattr_init(&ca);
	/* Wall-clock jumps must neither stretch nor cut a timeout. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->done_cv, &ca);
	pthread_condattr_destroy(&ca);

	/* Signals belong to the daemon's main thread; a blocked SIGPIPE also
	 * turns a FIFO reader that went away into EPIPE. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&m->thread, NULL, writer_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		mirror_destroy(m);
		return r;
	}
	*ret = m;
	return 0;
}

int mirror_write(struct mirror *m, const char *line, size_t n)
{
	struct timespec deadline;
	uint64_t seq;
	char *copy;
	int r;

	if (n == SIZE_MAX)
		return -EINVAL;
	copy = malloc(n + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, line, n);
	copy[n] = '\n';

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += m->timeout_ms / 1000;
	deadline.tv_nsec += (long)(m->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&m->mu);
	/* Only if callers overlap after all: wait for the line ahead. */
	while (m->busy && !m->abandoned)
		if (pthread_cond_timedwait(&m->done_cv, &m->mu, &deadline) == ETIMEDOUT)
			break;
	if (m->busy) {
		r = m->abandoned ? -EBUSY : -ETIMEDOUT;
		pthread_mutex_unlock(&m->mu);
		free(copy);
		return r;
	}
	m->line = copy;
	m->len = n + 1;
	m->busy = true;
	m->abandoned = false;
	seq = ++m->handed;
	pthread_cond_signal(&m->work_cv);

	while (m->done != seq)
		if (pthread_cond_timedwait(&m->done_cv, &m->mu, &deadline) == ETIMEDOUT)
			break;
	if (m->done == seq)
		r = m->result;
	else {
		/* The writer keeps the line (and frees it); we only mark it. */
		m->abandoned = true;
		r = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&m->mu);
	return r;
}

void mirror_free(struct mirror *m)
{
	pthread_t t;

	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	if (m->busy) {
		/* Stuck in a system call that may never return: joining could
		 * hang shutdown, so the writer cleans up after itself. */
		m->orphaned = true;
		t = m->thread;
		pthread_mutex_unlock(&m->mu);
		(void)pthread_detach(t);
		return;
	}
	pthread_cond_signal(&m->work_cv);
	pthread_mutex_unlock(&m->mu);
	(void)pthread_join(m->thread, NULL);
	mirror_destroy(m);
}
