/* vaultd/rotate/rotate.h: the rotation worker.
 *
 * Rotations are jobs, rows of the rotations table (store.h), queued by the
 * API (http/h_rotate.c) or by the worker itself (a tenant KEK near its wrap
 * limit). One thread runs them one at a time, oldest first, in steps: a
 * start step, batches of [rotation] batch_size rows, and a finishing step,
 * each one write transaction that also advances the job row, so a crash
 * between steps resumes where it stopped and a crash inside a step loses only
 * that step. The thread works only while the vault is unlocked; a lock pauses
 * a job, the next unlock resumes it. Between steps the writer is free, so
 * reads and writes go on during every rotation.
 *
 * After an unlock the worker also retires HSM keys an HSM-key rotation left
 * behind (the unlock having proved the new key), and prunes the audit log when
 * [audit] retain_days is set.
 *
 * Fault injection (test builds with VAULTD_FAULT_INJECTION only): the
 * environment variable VAULTD_TEST_CRASH_ROTATION="<kind>:<point>[:<n>]", with
 * point "start" (after the start step commits), "batch" (after the n-th batch
 * of that kind commits, default 1) or "finish" (in the finishing step, just
 * before its commit), makes the daemon SIGKILL itself there;
 * VAULTD_TEST_AUDIT_CLOCK_OFFSET=<seconds> moves audit retention's clock; and
 * while the file VAULTD_TEST_ROTATION_PAUSE_FILE names exists, no job step
 * runs (if it holds a number N: once the running job has done N rows).
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

struct rotator;

/* What the worker needs, and nothing of the layers above it. Everything is
 * borrowed and must outlive the worker (rotator_stop() joins it). */
struct rotator_deps {
	struct store *store;
	struct keyring *keyring;
	unsigned batch_size;            /* [rotation] batch_size, >= 1 */
	uint64_t kek_max_wraps;         /* [keys] kek_max_wraps: queue a KEK rotation at this count */
	/* One audit record of the daemon's own doing, in tx (a job's start,
	 * end or failure, an HSM key retirement). < 0 refuses the step. */
	int (*record)(void *userdata, struct store_tx *tx, const char *action, const char *path, const char *result,
		      const char *detail);
	/* Called when the worker wakes and the vault is unlocked (audit
	 * retention). May be NULL. */
	void (*on_idle_unlocked)(void *userdata);
	void *userdata;
};

/* Queues a job of kind for target in tx, or finds the active one
 * (*ret_existing). *ret is the job either way. */
int rotate_queue(struct store_tx *tx, const char *kind, const char *target, const char *principal,
		 const char *request_id, struct store_rotation *ret, bool *ret_existing);

/* Starts the worker thread. -EINVAL for missing dependencies. */
int rotator_start(const struct rotator_deps *d, struct rotator **ret);
/* Stops and joins it (a running step finishes first). NULL-safe. */
void rotator_stop(struct rotator *r);
/* Wakes the worker: a job was queued, a write may have pushed a KEK to its
 * limit, or (unlocked) the vault was just unlocked. NULL-safe. */
void rotator_kick(struct rotator *r, bool unlocked);
