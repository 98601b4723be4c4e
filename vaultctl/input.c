/* vaultctl/input.c: see input.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>
#include "vaultctl/input.h"
#include "vaultctl/msg.h"

void field_clear(struct field *f)
{
	free(f->name);
	secret_free(f->value);
	*f = (struct field){ 0 };
}

static int read_fd(int fd, size_t max, const char *name, struct secret **ret)
{
	_cleanup_secret_ struct secret *s = NULL;
	ssize_t n;

	if (secret_new(max + 2, &s) < 0)
		return error("out of memory");
	for (;;) {
		n = read(fd, s->p + s->len, s->cap - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error("cannot read %s: %m", name);
		if (n == 0)
			break;
		s->len += (size_t)n;
		if (s->len > max)
			return error("%s is larger than %zu bytes", name, max);
	}
	/* One trailing newline is the editor's or echo's, not the value's. */
	if (s->len && s->p[s->len - 1] == '\n') {
		s->len--;
		if (s->len && s->p[s->len - 1] == '\r')
			s->len--;
	}
	s->p[s->len] = 0;
	*ret = TAKE_PTR(s);
	return EXIT_OK;
}

int read_value_file(const char *path, size_t max, struct secret **ret)
{
	int fd, r;

	if (streq(path, "-"))
		return read_fd(STDIN_FILENO, max, "standard input", ret);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return error("cannot open %s: %m", path);
	r = read_fd(fd, max, path, ret);
	close(fd);
	return r;
}

int field_parse(const char *arg, bool *stdin_used, struct field *ret)
{
	const char *eq = strchr(arg, '=');
	struct field f = { 0 };
	int r;

	if (!eq || eq == arg)
		/* arg is not echoed: it may be a value typed in the wrong place. */
		return usage_error(NULL, "expected FIELD=VALUE, FIELD=@FILE or FIELD=- (an argument has no field name)");
	f.name = strndup(arg, (size_t)(eq - arg));
	if (!f.name)
		return error("out of memory");
	if (streq(eq + 1, "-")) {
		if (*stdin_used) {
			field_clear(&f);
			return usage_error(NULL, "only one field can be read from standard input (FIELD=-)");
		}
		*stdin_used = true;
		if (isatty(STDIN_FILENO))
			fprintf(stderr, "vaultctl: reading %s from standard input (end with Ctrl-D)\n", f.name);
		r = read_value_file("-", VALUE_MAX, &f.value);
	} else if (eq[1] == '@') {
		r = read_value_file(eq + 2, VALUE_MAX, &f.value);
	} else {
		size_t n = strlen(eq + 1);
		f.literal = true;
		r = secret_new(n + 1, &f.value) < 0 || secret_append(f.value, eq + 1, n) < 0 ? error("out of memory")
											   : EXIT_OK;
		if (r == EXIT_OK)
			f.value->p[n] = 0;
	}
	if (r != EXIT_OK) {
		field_clear(&f);
		return r;
	}
	*ret = f;
	return EXIT_OK;
}

/* Restores the terminal if a signal arrives while echo is off. */
static int tty_fd = -1;
static struct termios tty_saved;
static volatile sig_atomic_t tty_dirty;

static void on_signal(int sig)
{
	if (tty_dirty)
		(void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

bool can_prompt(void)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int prompt(const char *text, bool echo, size_t max, struct secret **ret)
{
	_cleanup_secret_ struct secret *s = NULL;
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term, old_hup;
	struct termios t;
	char c;
	ssize_t n;
	int r = EXIT_OK;

	tty_fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty_fd < 0)
		return error("no terminal to ask for the %s: give it with an option (see --help)", text);
	if (secret_new(max + 1, &s) < 0) {
		close(tty_fd);
		return error("out of memory");
	}
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	if (!echo && tcgetattr(tty_fd, &tty_saved) == 0) {
		t = tty_saved;
		t.c_lflag &= ~(tcflag_t)ECHO;
		t.c_lflag |= ECHONL;
		tty_dirty = 1;
		(void)tcsetattr(tty_fd, TCSAFLUSH, &t);
	}
	dprintf(tty_fd, "%c%s: ", text[0] >= 'a' && text[0] <= 'z' ? text[0] - 'a' + 'A' : text[0], text + 1);
	for (;;) {
		n = read(tty_fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		if (s->len >= max) {
			r = error("the %s is longer than %zu characters", text, max);
			break;
		}
		s->p[s->len++] = (uint8_t)c;
	}
	if (tty_dirty) {
		(void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		tty_dirty = 0;
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	close(tty_fd);
	tty_fd = -1;
	c = 0;
	if (r != EXIT_OK)
		return r;
	if (n == 0 && s->len == 0)
		return error("no %s given", text);
	s->p[s->len] = 0;
	*ret = TAKE_PTR(s);
	return EXIT_OK;
}

int get_passphrase(const char *file, bool twice, const char *what, struct secret **ret)
{
	_cleanup_secret_ struct secret *a = NULL, *b = NULL;
	_cleanup_free_ char *again = NULL;
	int r;

	if (file)
		return read_value_file(file, PASSPHRASE_MAX, ret);
	if (!can_prompt())
		return error("no terminal to ask for the %s: use --passphrase-file FILE", what);
	if ((r = prompt(what, false, PASSPHRASE_MAX, &a)) != EXIT_OK)
		return r;
	if (twice) {
		if (asprintf(&again, "%s (again)", what) < 0)
			return error("out of memory");
		if ((r = prompt(again, false, PASSPHRASE_MAX, &b)) != EXIT_OK)
			return r;
		if (!secret_equal(a, b))
			return error("the two passphrases differ: try again");
	}
	*ret = TAKE_PTR(a);
	return EXIT_OK;
}

bool confirm(const char *question)
{
	_cleanup_secret_ struct secret *s = NULL;

	if (prompt(question, true, 16, &s) != EXIT_OK)
		return false;
	return streq((char *)s->p, "y") || streq((char *)s->p, "yes");
}
