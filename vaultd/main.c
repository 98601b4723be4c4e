/* vaultd/main.c: start-up, signals and shutdown of the daemon.
 *
 * Order matters: harden the process before reading anything, block the
 * signals we handle before any thread exists (so only the main thread's
 * sigwait() sees them), fork (without -f) before PKCS#11 is ever touched,
 * then open storage, the keyring and the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/err.h"
#include "common/json.h"
#include "common/keyprov.h"
#include "common/log.h"
#include "common/secret.h"
#include "vaultd/core/vault.h"
#include "vaultd/http/api.h"
#include "vaultd/config.h"
#include "vaultd/core/dev.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/sandbox.h"
#include "vaultd/http/server.h"
#include "vaultd/store/store.h"
#include "version.h"

static void usage(FILE *f)
{
	fputs("Usage: vaultd -c FILE [-f]\n"
	      "       vaultd --dev DIR\n"
	      "\n"
	      "Credential vault daemon: stores integration credentials under AES-256-GCM\n"
	      "envelope encryption rooted in a PKCS#11 HSM key, and serves them over a\n"
	      "Unix socket. Starts locked; unlock with 'vaultctl unlock'.\n"
	      "\n"
	      "  -c, --config FILE  configuration file (see vaultd.conf(5))\n"
	      "  -f, --foreground   stay in the foreground and log to stderr\n"
	      "      --dev DIR      development vault in DIR: own SoftHSM2 token, initialised\n"
	      "                     and unlocked, foreground. NEVER FOR PRODUCTION.\n"
	      "  -h, --help         this help\n"
	      "      --version      print the version\n"
	      "\n"
	      "Example: vaultd --dev /tmp/vault && curl --unix-socket /tmp/vault/vaultd.sock \\\n"
	      "           http://vaultd/v1/sys/health\n",
	      f);
}

/* Classic double fork: not a session leader, no controlling terminal. Runs
 * before any thread and before PKCS#11 is loaded. */
static int daemonize(void)
{
	pid_t pid;
	int fd;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -errno;
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)dup2(fd, 0);
	(void)dup2(fd, 1);
	(void)dup2(fd, 2);
	if (fd > 2)
		close(fd);
	return 0;
}

static int resolve_group(const char *name, gid_t *ret)
{
	struct group *g;

	if (!name || !*name) {
		*ret = (gid_t)-1;
		return 0;
	}
	errno = 0;
	g = getgrnam(name);
	if (!g)
		return errno ? -errno : -ENOENT;
	*ret = g->gr_gid;
	return 0;
}

static int check_parent_dir(const char *what, const char *path)
{
	char buf[PATH_MAX];
	int r;

	snprintf(buf, sizeof(buf), "%s", path);
	r = sandbox_check_dir(dirname(buf));
	if (r == -EPERM)
		log_error("refusing to run: the %s '%s' is in that directory (see the line above)", what, path);
	else if (r < 0)
		log_error_errno(r, "cannot use the directory of the %s '%s'", what, path);
	return r;
}

static void print_dev_banner(const struct dev_vault *d, const struct config *cfg)
{
	/* The dev banner is the one place a passphrase is printed: the user asked
	 * for a throwaway vault and must be able to use it. Never in production. */
	printf("\n"
	       "vaultd %s DEVELOPMENT VAULT: NOT FOR PRODUCTION\n"
	       "  directory   %s\n"
	       "  socket      %s\n"
	       "  admin user  %s\n"
	       "  passphrase  %.*s   (also in %s/admin.passphrase)\n"
	       "  TOTP secret %s   (for your authenticator app; recovery codes in %s/admin.recovery)\n"
	       "  uid %u is bound as service 'dev' with role admin: it may use the API without logging in.\n"
	       "\n"
	       "  curl --unix-socket %s http://vaultd/v1/sys/health\n"
	       "\n",
	       VAULTD_VERSION, d->dir, cfg->server.socket, DEV_ADMIN, (int)d->passphrase->len,
	       (const char *)d->passphrase->p, d->dir, d->totp_secret ? (const char *)d->totp_secret->p : "?",
	       d->dir, (unsigned)getuid(), cfg->server.socket);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "dev", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	const char *config_path = NULL, *dev_dir = NULL;
	struct config cfg = {0};
	struct dev_vault dev = {0};
	struct vault *vault = NULL;
	struct api *api = NULL;
	struct server *server = NULL;
	char err[1024];
	bool foreground = false;
	sigset_t sigs;
	int c, r, sig, ret = 1;

	while ((c = getopt_long(argc, argv, "c:fh", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'D':
			dev_dir = optarg;
			foreground = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vaultd %s\n", VAULTD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !!config_path == !!dev_dir) {
		fprintf(stderr, "vaultd: give exactly one of -c FILE or --dev DIR (see vaultd --help)\n");
		return 2;
	}

	r = sandbox_early();
	if (r < 0) {
		log_error_errno(r, "cannot harden the process");
		return 1;
	}
	if (secret_library_init() < 0) {
		log_error("libsodium failed to initialise");
		return 1;
	}
	json_secure_init();

	/* Only the main thread takes these, through sigwait(); every thread
	 * created later inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (dev_dir) {
		r = dev_prepare(dev_dir, &dev);
		if (r < 0)
			goto out;
		r = config_load_string(dev.config_text, dev.config_name, &cfg, err, sizeof(err));
	} else {
		r = config_check_file_safety(config_path, err, sizeof(err));
		if (r >= 0)
			r = config_load(config_path, &cfg, err, sizeof(err));
	}
	if (r < 0) {
		fprintf(stderr, "vaultd: %s\n", err);
		goto out;
	}
	log_set_max_level(cfg.log.level);

	/* Before any thread: per-request secrets and JSON come from here. */
	r = secret_arena_init((size_t)cfg.server.secure_memory_mib << 20);
	if (r < 0) {
		log_error_errno(r, "cannot map the secure memory arena of %u MiB ([server] secure_memory_mib)",
				cfg.server.secure_memory_mib);
		goto out;
	}
	if (r > 0)
		log_warning("the secure memory arena (%zu MiB) could not be locked or kept out of core dumps; "
			    "raise LimitMEMLOCK or grant CAP_IPC_LOCK", secret_arena_size() >> 20);
	else
		log_debug("secure memory arena: %zu MiB", secret_arena_size() >> 20);

	r = sandbox_lock_memory();
	if (r < 0)
		log_warning_errno(r, "cannot lock memory (mlockall); keys could reach swap. Raise "
				     "LimitMEMLOCK or grant CAP_IPC_LOCK");

	if (check_parent_dir("database", cfg.storage.path) < 0 || check_parent_dir("socket", cfg.server.socket) < 0)
		goto out;

	if (!foreground) {
		r = daemonize();
		if (r < 0) {
			log_error_errno(r, "cannot detach");
			goto out;
		}
	}

	{
		struct vault_config vcfg = {
			.db_path = cfg.storage.path,
			.db_readers = cfg.storage.readers,
			.hsm = {
				.prov = {
					.module_path = cfg.hsm.module,
					.token_label = cfg.hsm.token_label,
					.pin_file = cfg.hsm.pin_file,
					.pin_env = cfg.hsm.pin_env,
					.timeout_ms = cfg.hsm.timeout_ms,
				},
				.key_label = cfg.hsm.key_label,
			},
			.kek_cache_max = cfg.keys.kek_cache_max,
			.audit = {
				.jsonl_path = cfg.audit.jsonl_path,
				.jsonl_refuse = streq(cfg.audit.jsonl_on_failure, "refuse"),
				.jsonl_timeout_ms = cfg.audit.jsonl_timeout_ms,
				.retain_days = cfg.audit.retain_days,
				.sync_normal = streq(cfg.audit.sync, "normal"),
				.sync_interval_ms = cfg.audit.sync_interval_ms,
			},
			.rotate_batch = cfg.rotation.batch_size,
			.kek_max_wraps = cfg.keys.kek_max_wraps,
		};
		struct api_config acfg = {
			.daemon_uid = getuid(),
			.session_ttl = cfg.auth.session_ttl,
			.max_failures = cfg.auth.max_failures,
			.lockout_seconds = cfg.auth.lockout_seconds,
			.keep_versions = cfg.secrets.keep_versions,
			.kek_max_wraps = cfg.keys.kek_max_wraps,
			.argon2 = {
				.iterations = cfg.auth.argon2_iterations,
				.memory_kib = cfg.auth.argon2_memory_kib,
				.parallelism = cfg.auth.argon2_parallelism,
			},
		};

		/* oaep-sha256-host fixes its hash; oaep-token takes the configured one. */
		if (keyprov_mech_from_name(cfg.hsm.mechanism, &vcfg.hsm.mech) < 0 ||
		    keyprov_hash_from_name(vcfg.hsm.mech == KEYPROV_MECH_OAEP_HOST ? "sha256" : cfg.hsm.oaep_token_hash,
					   &vcfg.hsm.hash) < 0) {
			log_error("bad HSM mechanism '%s'", cfg.hsm.mechanism);
			goto out;
		}
		/* vault_new() logs what failed. */
		if (vault_new(&vcfg, &vault) < 0)
			goto out;
		r = api_new(&acfg, vault, &api);
		if (r < 0) {
			log_error_errno(r, "cannot start");
			goto out;
		}
	}

	if (dev_dir) {
		if (!vault_is_initialized(vault)) {
			const struct auth_params argon2 = {
				.iterations = cfg.auth.argon2_iterations,
				.memory_kib = cfg.auth.argon2_memory_kib,
				.parallelism = cfg.auth.argon2_parallelism,
			};
			json_t *enrolment = NULL;
			r = vault_init(vault, &argon2, DEV_ADMIN, dev.passphrase, /* record= */ NULL, NULL, &enrolment);
			if (r >= 0)
				r = dev_save_enrolment(&dev, json_string_value(json_object_get(enrolment, "totp_secret")),
						       json_object_get(enrolment, "recovery_codes"));
			json_decref(enrolment);
			if (r < 0) {
				log_error_errno(r, "cannot initialise the dev vault");
				goto out;
			}
		}
		r = vault_unlock_with_passphrase(vault, DEV_ADMIN, dev.passphrase);
		if (r >= 0)
			r = vault_bind_service(vault, "dev", getuid(), "[\"admin\"]");
		if (r < 0) {
			log_error_errno(r, "cannot unlock the dev vault");
			goto out;
		}
	} else {
		/* Find HSM trouble at start, not at the first unlock or init.
		 * Not fatal: the HSM may come back, and health must answer
		 * meanwhile. */
		r = keyring_check_hsm(vault->keyring, vault->store);
		if (r < 0) {
			const char *d = keyprov_error_detail();

			log_error("%s%s%s; %s will fail until it is fixed", vlt_strerror(r), *d ? ": " : "", d,
				  vault_is_initialized(vault) ? "unlock" : "init");
		}
	}

	{
		struct server_config scfg = {
			.socket_path = cfg.server.socket,
			.socket_mode = cfg.server.socket_mode,
			.max_connections = cfg.server.max_connections,
			.max_per_uid = cfg.server.max_connections_per_uid,
			.timeout_s = cfg.server.request_timeout,
			.max_body = cfg.server.max_body,
			.threads = cfg.server.threads,
			.max_url = 2048,
		};

		r = resolve_group(cfg.server.socket_group, &scfg.socket_gid);
		if (r < 0) {
			log_error_errno(r, "unknown socket group '%s'", cfg.server.socket_group);
			goto out;
		}
		r = sandbox_check_socket_group(cfg.server.socket, cfg.server.socket_mode, cfg.server.socket_group,
					       scfg.socket_gid);
		if (r < 0) {
			if (r != -EPERM)
				log_error_errno(r, "cannot inspect the directory of the socket '%s'", cfg.server.socket);
			goto out;
		}
		r = server_start(&scfg, api_handle, api, &server);
		if (r < 0) {
			log_error_errno(r, "cannot serve on '%s'", cfg.server.socket);
			goto out;
		}
	}
	if (dev_dir)
		print_dev_banner(&dev, &cfg);
	log_info("vaultd %s serving on %s (%s)", VAULTD_VERSION, cfg.server.socket,
		 !vault_is_initialized(vault) ? "uninitialized" : keyring_is_unlocked(vault->keyring) ? "unlocked" : "locked");

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			/* Reload what is safe to change live: the log level. Keys,
			 * paths and the HSM need a restart. */
			struct config fresh = {0};
			if (config_path && config_load(config_path, &fresh, err, sizeof(err)) >= 0) {
				log_set_max_level(fresh.log.level);
				log_info("configuration reloaded (log level %d)", fresh.log.level);
			} else if (config_path)
				log_error("reload failed, keeping the running configuration: %s", err);
			config_free(&fresh);
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	ret = 0;
out:
	/* No handler runs after server_stop(); the core then tears its parts
	 * down in dependency order (core/vault.h). */
	server_stop(server);
	api_free(api);
	vault_free(vault);
	dev_vault_clear(&dev);
	config_free(&cfg);
	return ret;
}
