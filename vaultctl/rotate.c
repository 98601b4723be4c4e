/* vaultctl/rotate.c: rotate secret, kek, root, hsm, all, status, job
 * (docs/api.md, "Rotation"). vaultd runs rotations as jobs on one worker
 * thread; the commands that start one wait for it by polling
 * GET /v1/rotate/jobs/<id> (unless --no-wait), drawing a progress bar on
 * standard error when it is a terminal, and print one summary line per job.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "common/duration.h"
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/input.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/rotate.h"

/* Every poll is an audited read in vaultd: start quick (most jobs are
 * short), then back off, so an hour-long rotation watched from a terminal
 * leaves some 1800 records rather than 7200. */
#define POLL_MIN_MS 250
#define POLL_MAX_MS 2000
#define BAR_WIDTH 30
#define JOB_ID_MAX ((unsigned long)INT64_MAX)
#define CONFIRM_ALL "rotate all"

/* Which options a subcommand takes. */
enum {
	RO_NO_WAIT = 1 << 0,    /* --no-wait */
	RO_ALL = 1 << 1,        /* --all (secret) */
	RO_YES = 1 << 2,        /* --yes (all) */
	RO_RETIRE = 1 << 3,     /* --retire (hsm) */
	RO_WITHIN = 1 << 4,     /* --within (status) */
	RO_WAIT = 1 << 5,       /* --wait (job) */
};

struct rotate_opts {
	bool no_wait, all, yes, retire, wait;
	const char *within;
};

static int parse_rotate_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
			     unsigned allowed, struct rotate_opts *o)
{
	enum {
		OPT_NO_WAIT = OPT_COMMON_LAST + 1,
		OPT_ALL,
		OPT_YES,
		OPT_RETIRE,
		OPT_WITHIN,
		OPT_WAIT,
	};
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "yes", no_argument, NULL, OPT_YES },
		{ "retire", no_argument, NULL, OPT_RETIRE },
		{ "within", required_argument, NULL, OPT_WITHIN },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{},
	};
	int64_t within;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "y", opts)) != -1) {
		switch (c) {
		case OPT_NO_WAIT:
			if (!(allowed & RO_NO_WAIT))
				return usage_error(cmd, "%s takes no --no-wait", cmd);
			o->no_wait = true;
			break;
		case OPT_ALL:
			if (!(allowed & RO_ALL))
				return usage_error(cmd, "%s takes no --all", cmd);
			o->all = true;
			break;
		case 'y':
		case OPT_YES:
			if (!(allowed & RO_YES))
				return usage_error(cmd, "%s takes no --yes", cmd);
			o->yes = true;
			break;
		case OPT_RETIRE:
			if (!(allowed & RO_RETIRE))
				return usage_error(cmd, "%s takes no --retire", cmd);
			o->retire = true;
			break;
		case OPT_WITHIN:
			if (!(allowed & RO_WITHIN))
				return usage_error(cmd, "%s takes no --within", cmd);
			r = duration_parse(optarg, &within);
			if (r == -ERANGE)
				return usage_error(cmd, "--within must be from 1h to 3660d (about ten years), not '%s'",
						   optarg);
			if (r < 0)
				return usage_error(cmd, "--within wants a duration like 30d (1 to 6 digits and h, d or w), "
						   "not '%s'", optarg);
			o->within = optarg;
			break;
		case OPT_WAIT:
			if (!(allowed & RO_WAIT))
				return usage_error(cmd, "%s takes no --wait", cmd);
			o->wait = true;
			break;
		default:
			if ((r = common_option(ctx, c, help)) != OPT_CONTINUE)
				return r;
		}
	}
	return OPT_CONTINUE;
}

/* ---- jobs ---- */

static const char *job_str(const json_t *job, const char *key)
{
	return json_string_value(json_object_get(job, key)) ?: "";
}

static long long job_int(const json_t *job, const char *key)
{
	return (long long)json_integer_value(json_object_get(job, key));
}

static bool job_finished(const json_t *job)
{
	const char *s = job_str(job, "state");

	return streq(s, "done") || streq(s, "failed");
}

static bool job_valid(const json_t *job)
{
	return json_is_object(job) && json_is_integer(json_object_get(job, "id")) &&
	       json_is_string(json_object_get(job, "kind")) && json_is_string(json_object_get(job, "state"));
}

/* What a job rotates: "kek acme", "root", "hsm", "secret acme/rmm", "secret *"
 * (the whole store). */
static char *job_label(const json_t *job)
{
	const char *kind = job_str(job, "kind"), *target = job_str(job, "target");
	char *s = NULL;

	if (streq(kind, "secret") && !*target)
		target = "*";
	if (asprintf(&s, "%s%s%s", kind, *target ? " " : "", target) < 0)
		abort();
	return s;
}

/* GET /v1/rotate/jobs/<id> -> the job. Errors are reported here. */
static int fetch_job(struct ctx *ctx, long long id, json_t **ret)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	json_t *job;
	int r;

	if (asprintf(&url, "/v1/rotate/jobs/%lld", id) < 0 || asprintf(&what, "rotate job %lld", id) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	job = json_object_get(reply, "job");
	if (!job_valid(job))
		return error("%s: unexpected reply from vaultd (no job)", what);
	*ret = json_incref(job);
	return EXIT_OK;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	/* SIGINT cuts it short (no SA_RESTART): the loop then stops. */
	(void)nanosleep(&ts, NULL);
}

/* "\r[#####.....]  52%  5200/10000  kek acme" on standard error. */
static void draw_bar(long long done, long long total, const char *label, const char *note)
{
	char bar[BAR_WIDTH + 1];
	int pct = total > 0 ? (int)(done * 100 / total) : 0, fill;

	pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
	fill = pct * BAR_WIDTH / 100;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
	bar[BAR_WIDTH] = 0;
	/* Our own escape sequence, then the server's text, escaped. */
	fprintf(stderr, "\r\033[K[%s] %3d%%  %lld/%lld  ", bar, pct, done, total);
	out_fprintf(stderr, "%s%s", label, note);
	fflush(stderr);
	progress_drawn = true;
}

/* Redraws the bar for jobs, cur being the job in progress. */
static void draw_progress(const json_t *jobs, size_t cur)
{
	const json_t *job = json_array_get(jobs, cur), *j;
	_cleanup_free_ char *label = job_label(job), *note = NULL;
	long long done = 0, total = 0;
	size_t i, n = json_array_size(jobs);
	bool queued = streq(job_str(job, "state"), "queued");

	json_array_foreach(jobs, i, j) {
		/* A finished job counts whole even if total undercounted. */
		long long d = job_int(j, "done"), t = job_int(j, "total");
		done += job_finished(j) && t < d ? t : d;
		total += t;
	}
	if (n > 1) {
		size_t k = 0;
		json_array_foreach(jobs, i, j)
			k += job_finished(j);
		if (asprintf(&note, " (job %zu of %zu%s)", k + 1, n, queued ? ", queued" : "") < 0)
			abort();
	} else if (!(note = strdup(queued ? " (queued)" : "")))
		abort();
	draw_bar(done, total, label, note);
}

/* Polls the jobs (an array, each replaced by its newest state) until every
 * one is done or failed. vaultd runs jobs one at a time, oldest first, so
 * one request per tick asks about the oldest unfinished job (and, when that
 * one finished, the next). EXIT_OK, or the exit code of a failed poll. */
static int wait_jobs(struct ctx *ctx, json_t *jobs)
{
	size_t n = json_array_size(jobs), *order = calloc(n ? n : 1, sizeof(size_t));
	struct sigaction sa = { .sa_handler = on_sigint }, old;
	bool tty = isatty(STDERR_FILENO);
	long long pending_id = -1, watched_id = -1;
	unsigned poll_ms = POLL_MIN_MS;
	int r = EXIT_OK;

	if (!order)
		return error("out of memory");
	/* Oldest (lowest id) first: the worker's order. */
	for (size_t i = 0; i < n; i++) {
		size_t k = i;
		for (; k > 0 && job_int(json_array_get(jobs, order[k - 1]), "id") > job_int(json_array_get(jobs, i), "id");
		     k--)
			order[k] = order[k - 1];
		order[k] = i;
	}
	interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	for (;;) {
		size_t cur = n;

		for (size_t k = 0; k < n && !interrupted; k++) {
			size_t i = order[k];
			json_t *fresh = NULL;

			if (job_finished(json_array_get(jobs, i)))
				continue;
			pending_id = job_int(json_array_get(jobs, i), "id");
			if ((r = fetch_job(ctx, pending_id, &fresh)) != EXIT_OK)
				goto out;
			json_array_set_new(jobs, i, fresh);
			if (!job_finished(fresh)) {
				cur = i;
				break;
			}
		}
		if (interrupted)
			break;
		if (cur == n) {
			pending_id = -1;
			break;
		}
		if (tty)
			draw_progress(jobs, cur);
		if (pending_id != watched_id) {
			watched_id = pending_id;
			poll_ms = POLL_MIN_MS;
		}
		sleep_ms(poll_ms);
		poll_ms = MIN(poll_ms * 3 / 2, POLL_MAX_MS);
		if (interrupted)
			break;
	}
out:
	progress_wipe();
	sigaction(SIGINT, &old, NULL);
	free(order);
	if (interrupted || r != EXIT_OK) {
		/* The job is vaultd's: stopping to watch does not stop it. */
		if (r == EXIT_FORBIDDEN && pending_id >= 0)
			/* A job queued ahead of ours may be another tenant's. */
			fprintf(stderr, "vaultctl: job %lld was queued and goes on in vaultd, but following the jobs "
				"ahead of it needs the rotate capability on their targets: use --no-wait, or "
				"'vaultctl rotate job %lld --wait'\n",
				pending_id, pending_id);
		else if (n == 1 && pending_id >= 0)
			fprintf(stderr, "vaultctl: job %lld goes on in vaultd (a lock pauses it until the next unlock): "
				"'vaultctl rotate job %lld --wait' follows it\n",
				pending_id, pending_id);
		else if (pending_id >= 0)
			fputs("vaultctl: the rotation jobs go on in vaultd (a lock pauses them until the next unlock): "
			      "'vaultctl rotate status' shows them\n",
			      stderr);
		return interrupted ? error("interrupted") : r;
	}
	return EXIT_OK;
}

static void print_summary(const json_t *job)
{
	_cleanup_free_ char *label = job_label(job);
	const char *kind = job_str(job, "kind");
	long long done = job_int(job, "done");

	if (streq(kind, "secret"))
		out_line("%s: %lld version%s re-encrypted under fresh data keys", label, done, done == 1 ? "" : "s");
	else
		out_line("%s: version %lld -> %lld, %lld key%s rewrapped", label, job_int(job, "from_version"),
			 job_int(job, "to_version"), done, done == 1 ? "" : "s");
}

static const char hsm_note[] =
	"The old HSM key stays in the token until the next unlock proves the new one\n"
	"(or 'vaultctl rotate hsm --retire'). Backups taken before this rotation need\n"
	"the old key: take a new backup ('vaultctl backup') before it is retired.\n";

/* What --json prints after waiting. */
enum report {
	REPORT_STARTED,         /* {"job": JOB, "already_active": BOOL}: the POST's reply, JOB as finished */
	REPORT_ALL,             /* {"jobs": [JOB, ...]} */
	REPORT_JOB,             /* {"job": JOB}: GET /v1/rotate/jobs/<id> */
};

/* After waiting: the summary (or JSON) and an error line per failed job. */
static int report_jobs(struct ctx *ctx, const json_t *jobs, enum report shape, bool already_active)
{
	const json_t *job;
	bool failed = false, hsm = false;
	size_t i;

	if (ctx->json) {
		const json_t *first = json_array_get(jobs, 0);
		_cleanup_json_ json_t *out =
			shape == REPORT_STARTED ? json_pack("{s:O, s:b}", "job", first, "already_active", already_active)
			: shape == REPORT_JOB   ? json_pack("{s:O}", "job", first)
						: json_pack("{s:O}", "jobs", jobs);
		print_json(out);
	}
	json_array_foreach(jobs, i, job) {
		_cleanup_free_ char *label = job_label(job);

		if (streq(job_str(job, "state"), "failed")) {
			failed = true;
			error("%s (job %lld) failed: %s; the old key version stays in use: run the rotation again to retry",
			      label, job_int(job, "id"), json_string_value(json_object_get(job, "error")) ?: "no reason given");
			continue;
		}
		hsm |= streq(job_str(job, "kind"), "hsm");
		if (!ctx->json)
			print_summary(job);
	}
	if (hsm && !ctx->json)
		fputs(hsm_note, stdout);
	return failed ? EXIT_ERROR : EXIT_OK;
}

/* POSTs a rotation request with {} and waits for its job (or jobs: "all"). */
static int start_rotation(struct ctx *ctx, const char *what, const char *url, const struct rotate_opts *o)
{
	_cleanup_json_ json_t *body = json_object(), *reply = NULL, *jobs = NULL;
	json_t *job, *list, *j;
	bool existing;
	size_t i;
	int r;

	if ((r = api_call(ctx, what, "POST", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	list = json_object_get(reply, "jobs");
	job = json_object_get(reply, "job");
	if (json_is_array(list)) {
		json_array_foreach(list, i, j)
			if (!job_valid(j))
				return error("%s: unexpected reply from vaultd (a job without id)", what);
		jobs = json_deep_copy(list);
	} else if (job_valid(job)) {
		jobs = json_array();
		json_array_append(jobs, job);
	} else
		return error("%s: unexpected reply from vaultd (no job)", what);
	existing = json_is_true(json_object_get(reply, "already_active"));

	if (o->no_wait) {
		if (ctx->json) {
			print_json(reply);
			return EXIT_OK;
		}
		json_array_foreach(jobs, i, j) {
			_cleanup_free_ char *label = job_label(j);
			if (existing)
				out_line("Job %lld (%s) is already %s: nothing new was queued.", job_int(j, "id"), label,
					 job_str(j, "state"));
			else
				out_line("Queued job %lld: %s.", job_int(j, "id"), label);
		}
		if (json_array_size(jobs) == 1)
			printf("Follow it with 'vaultctl rotate job %lld --wait'.\n", job_int(json_array_get(jobs, 0), "id"));
		else
			puts("Follow them with 'vaultctl rotate status'.");
		return EXIT_OK;
	}
	if (existing)
		out_fline(stderr, "vaultctl: %s: a rotation of the same key is already %s as job %lld: waiting for it",
			  what, job_str(job, "state"), job_int(job, "id"));
	if ((r = wait_jobs(ctx, jobs)) != EXIT_OK)
		return r;
	return report_jobs(ctx, jobs, json_is_array(list) ? REPORT_ALL : REPORT_STARTED, existing);
}

/* ---- commands ---- */

static const char rotate_help[] =
	"Usage: vaultctl rotate COMMAND ...\n"
	"\n"
	"Rotates the vault's keys online: reads and writes go on while vaultd\n"
	"re-encrypts in batches, and an interrupted rotation resumes after the next\n"
	"unlock. Each rotation is a job; vaultctl waits for it (a progress bar on a\n"
	"terminal) and prints a summary, unless --no-wait.\n"
	"\n"
	"Commands:\n"
	"  secret PATH|--all   fresh data keys for the secrets at or below PATH (rotate)\n"
	"  kek TENANT          a new key-encryption key for TENANT, DEKs rewrapped (rotate)\n"
	"  root                a new root key, every KEK rewrapped (admin)\n"
	"  hsm [--retire]      a new HSM key version in the token; --retire deletes old ones (admin)\n"
	"  all [--yes]         emergency: every layer, outermost first (admin)\n"
	"  status [--within D] keys, jobs and the credentials due for rotation (rotate on *)\n"
	"  job ID [--wait]     one job's state (rotate on *)\n"
	"\n"
	"Examples:\n"
	"  vaultctl rotate kek acme\n"
	"  vaultctl rotate status --within 30d\n";

static const char rotate_secret_help[] =
	"Usage: vaultctl rotate secret PATH|PREFIX [--no-wait] [--json]\n"
	"       vaultctl rotate secret --all [--no-wait] [--json]\n"
	"\n"
	"Re-encrypts every version of every secret at or below PREFIX (or of the\n"
	"whole store with --all) under fresh data keys. Needs the rotate capability\n"
	"on PREFIX (on * for --all). Waits for the job and prints how many versions\n"
	"were re-encrypted; --no-wait prints the job id and returns at once.\n"
	"Waiting reads the job, which needs the rotate capability on * (exit 5\n"
	"without it, after the job was queued): with rotate on PREFIX only, use\n"
	"--no-wait.\n"
	"With --json: {\"job\": JOB, \"already_active\": BOOL}, JOB as finished.\n"
	"Exit 1 if the job fails (every secret stays readable; run it again).\n"
	"\n"
	"Examples:\n"
	"  vaultctl rotate secret acme/rmm\n"
	"  vaultctl rotate secret --all --no-wait\n";

static int rotate_secret(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *url = NULL, *what = NULL, *esc = NULL;
	struct rotate_opts o = { 0 };
	const char *path;
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate secret", rotate_secret_help, RO_NO_WAIT | RO_ALL, &o)) !=
	    OPT_CONTINUE)
		return r;
	if (o.all && optind < argc)
		return usage_error("rotate secret", "give a PATH or --all, not both");
	if (!o.all && optind + 1 != argc)
		return usage_error("rotate secret", "rotate secret needs one PATH or PREFIX, or --all for the whole store");
	if (o.all) {
		if (!(url = strdup("/v1/rotate/secret")) || !(what = strdup("rotate secret --all")))
			return error("out of memory");
	} else {
		path = argv[optind];
		while (*path == '/')
			path++;
		if (!*path)
			return usage_error("rotate secret", "an empty PATH: use --all for the whole store");
		if (!(esc = path_escape(path)) || asprintf(&url, "/v1/rotate/secret/%s", esc) < 0 ||
		    asprintf(&what, "rotate secret %s", path) < 0)
			return error("out of memory");
	}
	return start_rotation(ctx, what, url, &o);
}

static const char rotate_kek_help[] =
	"Usage: vaultctl rotate kek TENANT [--no-wait] [--json]\n"
	"\n"
	"Creates TENANT's next key-encryption key (new writes use it at once),\n"
	"rewraps every data key of the tenant under it without decrypting any data,\n"
	"then deletes the old KEK versions. Needs the rotate capability on TENANT.\n"
	"Prints \"kek TENANT: version A -> B, N keys rewrapped\"; --no-wait prints the\n"
	"job id and returns at once. With --json: {\"job\": JOB, \"already_active\": BOOL}.\n"
	"Waiting reads the job, which needs the rotate capability on * (exit 5\n"
	"without it, after the job was queued): with rotate on TENANT only, use\n"
	"--no-wait. Exit 6 if nothing was ever stored under TENANT; 1 if the job fails.\n"
	"\n"
	"Example:\n"
	"  vaultctl rotate kek acme\n";

static int rotate_kek(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *url = NULL, *what = NULL, *esc = NULL;
	struct rotate_opts o = { 0 };
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate kek", rotate_kek_help, RO_NO_WAIT, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("rotate kek", "rotate kek needs exactly one TENANT");
	if (!*argv[optind] || strchr(argv[optind], '/'))
		return usage_error("rotate kek", "a KEK belongs to a tenant: TENANT is one path segment, like acme");
	if (!(esc = path_escape(argv[optind])) || asprintf(&url, "/v1/rotate/kek/%s", esc) < 0 ||
	    asprintf(&what, "rotate kek %s", argv[optind]) < 0)
		return error("out of memory");
	return start_rotation(ctx, what, url, &o);
}

static const char rotate_root_help[] =
	"Usage: vaultctl rotate root [--no-wait] [--json]\n"
	"\n"
	"Draws the next root key, wraps it with the HSM key, rewraps every tenant's\n"
	"KEK under it, then deletes the old root key. Needs the admin role.\n"
	"Prints \"root: version A -> B, N keys rewrapped\"; --no-wait prints the job id\n"
	"and returns at once. With --json: {\"job\": JOB, \"already_active\": BOOL}.\n"
	"\n"
	"Example:\n"
	"  vaultctl rotate root\n";

static int rotate_root(struct ctx *ctx, int argc, char **argv)
{
	struct rotate_opts o = { 0 };
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate root", rotate_root_help, RO_NO_WAIT, &o)) != OPT_CONTINUE)
		return r;
	if (optind != argc)
		return usage_error("rotate root", "rotate root takes no arguments");
	return start_rotation(ctx, "rotate root", "/v1/rotate/root", &o);
}

static const char rotate_hsm_help[] =
	"Usage: vaultctl rotate hsm [--no-wait] [--json]\n"
	"       vaultctl rotate hsm --retire [--json]\n"
	"\n"
	"Generates the next version of the HSM wrapping key in the token and\n"
	"rewraps the root key and every user's MFA key under it. The old HSM key\n"
	"stays in the token until the next unlock proves the new one, or until\n"
	"--retire, which checks that the current HSM key unwraps the root key and\n"
	"then deletes the old versions at once, printing each one deleted.\n"
	"A backup needs the HSM key version named in its manifest: take a new backup\n"
	"after rotating, before the old key is retired. Needs the admin role.\n"
	"With --json: {\"job\": JOB, \"already_active\": BOOL}; for --retire\n"
	"{\"deleted\": [{\"label\", \"version\"}]}.\n"
	"\n"
	"Examples:\n"
	"  vaultctl rotate hsm\n"
	"  vaultctl backup /var/backups/vaultd/after-hsm.db\n"
	"  vaultctl rotate hsm --retire\n";

static int rotate_hsm(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	struct rotate_opts o = { 0 };
	json_t *deleted, *d;
	size_t i;
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate hsm", rotate_hsm_help, RO_NO_WAIT | RO_RETIRE, &o)) !=
	    OPT_CONTINUE)
		return r;
	if (optind != argc)
		return usage_error("rotate hsm", "rotate hsm takes no arguments");
	if (!o.retire)
		return start_rotation(ctx, "rotate hsm", "/v1/rotate/hsm", &o);
	if (o.no_wait)
		return usage_error("rotate hsm", "--retire starts no job: --no-wait does not apply");
	body = json_object();
	if ((r = api_call(ctx, "rotate hsm --retire", "POST", "/v1/rotate/hsm/retire", body, API_AUTH, &reply)) !=
	    EXIT_OK)
		return r;
	deleted = json_object_get(reply, "deleted");
	if (!json_is_array(deleted))
		return error("rotate hsm --retire: unexpected reply from vaultd (no \"deleted\")");
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	if (!json_array_size(deleted))
		puts("No retired HSM key versions were left in the token: nothing deleted.");
	json_array_foreach(deleted, i, d)
		out_line("Deleted HSM key '%s' version %lld from the token.", job_str(d, "label"), job_int(d, "version"));
	return EXIT_OK;
}

static const char rotate_all_help[] =
	"Usage: vaultctl rotate all [--yes] [--no-wait] [--json]\n"
	"\n"
	"Emergency rotation of every key, for when a key may have leaked: queues\n"
	"a new HSM key, a new root key, a new KEK for every tenant and fresh data\n"
	"keys for every secret, in that order, and waits for all of them (one\n"
	"progress bar on a terminal). Asks you to type 'rotate all' on a terminal;\n"
	"without one it needs --yes. Needs the admin role.\n"
	"With --json: {\"jobs\": [JOB, ...]}, each as finished. Exit 1 if any job fails.\n"
	"\n"
	"Example:\n"
	"  vaultctl rotate all --yes\n";

static int rotate_all(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_secret_ struct secret *answer = NULL;
	struct rotate_opts o = { 0 };
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate all", rotate_all_help, RO_NO_WAIT | RO_YES, &o)) !=
	    OPT_CONTINUE)
		return r;
	if (optind != argc)
		return usage_error("rotate all", "rotate all takes no arguments");
	if (!o.yes) {
		/* Every key at once: a script must say so explicitly. */
		if (!isatty(STDIN_FILENO) || !can_prompt())
			return usage_error("rotate all", "rotate all replaces every key of the vault: add --yes to confirm");
		fputs("vaultctl: this is an emergency rotation of every key: a new HSM key, a new root key,\n"
		      "vaultctl: a new KEK for every tenant and fresh data keys for every secret.\n",
		      stderr);
		if ((r = prompt("type '" CONFIRM_ALL "' to continue", true, 64, &answer)) != EXIT_OK)
			return r;
		if (!streq((const char *)answer->p, CONFIRM_ALL))
			return error("not confirmed: nothing was rotated");
	}
	return start_rotation(ctx, "rotate all", "/v1/rotate/all", &o);
}

static void add_job_row(struct table *t, const json_t *job)
{
	_cleanup_free_ char *id = json_text(json_object_get(job, "id"));
	_cleanup_free_ char *progress = NULL;
	const char *target = job_str(job, "target"), *kind = job_str(job, "kind");

	if (asprintf(&progress, "%lld/%lld", job_int(job, "done"), job_int(job, "total")) < 0)
		abort();
	if (!*target)
		target = streq(kind, "secret") ? "*" : "-";
	{
		const char *row[] = { id,
				      kind,
				      target,
				      job_str(job, "state"),
				      progress,
				      job_str(job, "principal"),
				      json_string_value(json_object_get(job, "error")) };
		table_add(t, row);
	}
}

static const char rotate_status_help[] =
	"Usage: vaultctl rotate status [--within DURATION] [--json]\n"
	"\n"
	"Shows the key hierarchy and the rotation work: the root key and the HSM key\n"
	"that wraps it, HSM key versions awaiting retirement, each tenant's KEK\n"
	"(version, wraps so far and the limit that triggers an automatic rotation,\n"
	"old versions not yet deleted), the active and recent jobs, and the\n"
	"credentials whose metadata max_age has passed (overdue) or passes within\n"
	"DURATION (due soon; a number and h, d or w; default 14d), most overdue\n"
	"first, among those you may list. Needs the rotate capability on *.\n"
	"\n"
	"Example:\n"
	"  vaultctl rotate status --within 30d\n";

static int rotate_status(struct ctx *ctx, int argc, char **argv)
{
	static const char *const tenant_head[] = { "TENANT", "KEK VERSION", "WRAPS/LIMIT", "OLD VERSIONS" };
	static const char *const job_head[] = { "ID", "KIND", "TARGET", "STATE", "DONE/TOTAL", "PRINCIPAL", "ERROR" };
	static const char *const due_head[] = { "PATH", "TYPE", "AGE (DAYS)", "MAX AGE", "STATUS" };
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL;
	struct rotate_opts o = { 0 };
	const json_t *root, *hsm, *list, *e;
	struct table *t;
	size_t i;
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate status", rotate_status_help, RO_WITHIN, &o)) !=
	    OPT_CONTINUE)
		return r;
	if (optind != argc)
		return usage_error("rotate status", "rotate status takes no arguments");
	if (o.within ? asprintf(&url, "/v1/rotate/status?within=%s", o.within) < 0
		     : !(url = strdup("/v1/rotate/status")))
		return error("out of memory");
	if ((r = api_call(ctx, "rotate status", "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	root = json_object_get(reply, "root_key");
	hsm = json_object_get(root, "hsm_key");
	kv(10, "root key", "version %lld (created %s)", job_int(root, "version"), job_str(root, "created_at"));
	kv(10, "hsm key", "'%s' version %lld", job_str(hsm, "label"), job_int(hsm, "version"));
	list = json_object_get(reply, "hsm_keys_to_retire");
	if (!json_array_size(list))
		kv(10, "to retire", "none");
	json_array_foreach(list, i, e)
		kv(10, i ? "" : "to retire", "HSM key '%s' version %lld%s", job_str(e, "label"), job_int(e, "version"),
		   i + 1 == json_array_size(list) ? " (deleted at the next unlock, or 'vaultctl rotate hsm --retire')" : "");

	list = json_object_get(reply, "tenants");
	if (!json_array_size(list))
		puts("\nTenants: none (nothing stored yet)");
	else {
		puts("\nTenants:");
		t = table_new(4, tenant_head);
		json_array_foreach(list, i, e) {
			_cleanup_free_ char *ver = json_text(json_object_get(e, "kek_version"));
			_cleanup_free_ char *old = json_text(json_object_get(e, "old_versions"));
			_cleanup_free_ char *wraps = NULL;
			if (asprintf(&wraps, "%lld/%lld", job_int(e, "wrap_count"), job_int(e, "wrap_limit")) < 0)
				abort();
			const char *row[] = { job_str(e, "tenant"), ver, wraps, old };
			table_add(t, row);
		}
		table_print_free(t);
	}

	list = json_object_get(reply, "jobs");
	if (!json_array_size(list))
		puts("\nJobs: none");
	else {
		puts("\nJobs:");
		t = table_new(7, job_head);
		json_array_foreach(list, i, e)
			add_job_row(t, e);
		table_print_free(t);
	}

	list = json_object_get(reply, "credentials");
	putchar('\n');
	if (!json_array_size(list))
		out_line("Credentials due within %s: none", job_str(reply, "within"));
	else {
		out_line("Credentials due within %s:", job_str(reply, "within"));
		t = table_new(5, due_head);
		json_array_foreach(list, i, e) {
			_cleanup_free_ char *days = NULL;
			if (asprintf(&days, "%lld", job_int(e, "age_seconds") / 86400) < 0)
				abort();
			const char *row[] = { job_str(e, "path"), job_str(e, "type"), days, job_str(e, "max_age"),
					      job_str(e, "status") };
			table_add(t, row);
		}
		table_print_free(t);
	}
	return EXIT_OK;
}

static const char rotate_job_help[] =
	"Usage: vaultctl rotate job ID [--wait] [--json]\n"
	"\n"
	"Shows a rotation job: kind, target, state (queued, running, done, failed),\n"
	"who asked, the key versions, progress and error. --wait follows it until\n"
	"it finishes, like the command that started it (exit 1 if it fails).\n"
	"With --json: {\"job\": JOB}. Needs the rotate capability on *. Exit 6 if\n"
	"there is no such job.\n"
	"\n"
	"Examples:\n"
	"  vaultctl rotate job 12\n"
	"  vaultctl rotate job 12 --wait\n";

static int rotate_job(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *job = NULL, *jobs = NULL;
	_cleanup_free_ char *label = NULL, *versions = NULL, *progress = NULL;
	struct rotate_opts o = { 0 };
	unsigned long id;
	int r;

	if ((r = parse_rotate_opts(ctx, argc, argv, "rotate job", rotate_job_help, RO_WAIT, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("rotate job", "rotate job needs exactly one job ID");
	if (parse_uint(argv[optind], JOB_ID_MAX, &id) < 0 || id == 0)
		return usage_error("rotate job", "a job ID is a positive number, not '%s'", argv[optind]);
	if ((r = fetch_job(ctx, (long long)id, &job)) != EXIT_OK)
		return r;
	if (o.wait) {
		jobs = json_array();
		json_array_append(jobs, job);
		if ((r = wait_jobs(ctx, jobs)) != EXIT_OK)
			return r;
		return report_jobs(ctx, jobs, REPORT_JOB, false);
	}
	if (ctx->json) {
		_cleanup_json_ json_t *out = json_pack("{s:O}", "job", job);
		print_json(out);
		return EXIT_OK;
	}
	label = job_label(job);
	if (asprintf(&versions, "%lld -> %lld", job_int(job, "from_version"), job_int(job, "to_version")) < 0 ||
	    asprintf(&progress, "%lld/%lld", job_int(job, "done"), job_int(job, "total")) < 0)
		return error("out of memory");
	kv(10, "id", "%lld", job_int(job, "id"));
	kv(10, "rotates", "%s", label);
	kv(10, "state", "%s", job_str(job, "state"));
	kv(10, "principal", "%s", job_str(job, "principal"));
	if (!streq(job_str(job, "kind"), "secret"))
		kv(10, "versions", "%s", job_int(job, "to_version") ? versions : "-");
	kv(10, "progress", "%s", progress);
	kv(10, "error", "%s", json_string_value(json_object_get(job, "error")) ?: "-");
	kv(10, "created", "%s", job_str(job, "created_at"));
	kv(10, "updated", "%s", job_str(job, "updated_at"));
	kv(10, "finished", "%s", json_string_value(json_object_get(job, "finished_at")) ?: "-");
	return EXIT_OK;
}

int cmd_rotate(struct ctx *ctx, int argc, char **argv)
{
	static const struct subcommand table[] = {
		{ "secret", rotate_secret, "fresh data keys" },
		{ "kek", rotate_kek, "a tenant's key-encryption key" },
		{ "root", rotate_root, "the root key" },
		{ "hsm", rotate_hsm, "the HSM wrapping key" },
		{ "all", rotate_all, "every key (emergency)" },
		{ "status", rotate_status, "keys, jobs, credentials due" },
		{ "job", rotate_job, "one job" },
		{},
	};
	return run_subcommand(ctx, "rotate", table, rotate_help, argc, argv);
}
