/* tests/unit/softhsm_token.h: a SoftHSM2 token of a test's own, in a
 * temporary directory (unit tests that need a real keyring). Include it in
 * one test file after <cmocka.h>; it defines static helpers:
 *
 *   softhsm_token_make(label, pin)  makes the directory, the softhsm2.conf
 *                                   (SOFTHSM2_CONF points at it), a PIN file
 *                                   and the token, and returns the module path;
 *   softhsm_token_pin_file()        the PIN file's path;
 *   softhsm_token_dir()             the directory (databases go there too);
 *   softhsm_token_remove()          removes all of it.
 */
#pragma once
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char softhsm_dir_[] = "/tmp/vaultd-test-token-XXXXXX";
static char softhsm_pin_file_[300];

static void softhsm_write_file_(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static int softhsm_rm_entry_(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path);
}

static const char *softhsm_token_make(const char *label, const char *pin)
{
	char so_pin[64], conf[320], text[400];
	char *argv[] = { "softhsm2-util", "--init-token", "--free", "--label", (char *)label, "--pin", (char *)pin,
			 "--so-pin", so_pin, NULL };
	const char *module = getenv("VAULTD_SOFTHSM_MODULE");
	pid_t pid;
	int st;

	snprintf(so_pin, sizeof(so_pin), "so-%s", pin);
	assert_non_null(mkdtemp(softhsm_dir_));
	snprintf(conf, sizeof(conf), "%s/tokens", softhsm_dir_);
	assert_int_equal(mkdir(conf, 0700), 0);
	snprintf(text, sizeof(text), "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", conf);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", softhsm_dir_);
	softhsm_write_file_(conf, text);
	assert_int_equal(setenv("SOFTHSM2_CONF", conf, 1), 0);
	snprintf(softhsm_pin_file_, sizeof(softhsm_pin_file_), "%s/pin", softhsm_dir_);
	snprintf(text, sizeof(text), "%s\n", pin);
	softhsm_write_file_(softhsm_pin_file_, text);
	assert_int_equal(posix_spawnp(&pid, "softhsm2-util", NULL, NULL, argv, environ), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return module && *module ? module : "/usr/lib/softhsm/libsofthsm2.so";
}

static const char *softhsm_token_pin_file(void)
{
	return softhsm_pin_file_;
}

static const char *softhsm_token_dir(void)
{
	return softhsm_dir_;
}

static void softhsm_token_remove(void)
{
	(void)nftw(softhsm_dir_, softhsm_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}
