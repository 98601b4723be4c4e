/* vaultd/rotate.h: the rotation worker.
 *
 * Rotations are jobs, rows of the rotations table (store.h), queued by the
 * API (api_rotate.c) or by the worker itself (a tenant KEK near its wrap
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

struct api;
struct rotator;

/* Starts the worker thread. */
int rotator_start(struct api *a, struct rotator **ret);
/* Stops and joins it (a running step finishes first). NULL-safe. */
void rotator_stop(struct rotator *r);
/* Wakes the worker: a job was queued, a write may have pushed a KEK to its
 * limit, or (unlocked) the vault was just unlocked. NULL-safe. */
void rotator_kick(struct rotator *r, bool unlocked);
