/*
 * Write Partita stream processors in C.
 *
 * A processor defines two functions: `processor_init`, called once per
 * instance with the stage's configuration, and `processor_process`, called
 * for each record of each batch. The batch and results byte layout
 * (wit/processor.wit) and the WIT bindings stay inside this helper, as in
 * the Rust SDK (guest-sdk/src):
 *
 *     #include "partita.h"
 *
 *     bool processor_init(const pt_config *config) {
 *         static const char *const keys[] = {"suffix"};
 *         return pt_config_check_keys(config, keys, 1);
 *     }
 *
 *     void processor_process(const pt_record *record, pt_emitter *out) {
 *         pt_str text;
 *         if (!pt_value_str(record, out, &text)) return;  // rejected
 *         if (text.len == 0) { pt_reject(out, "empty value"); return; }
 *         pt_emit_value(out, text.ptr, text.len);
 *     }
 *
 * scripts/build-polyglot.sh builds a folder holding `processor.c` (and any
 * other `.c` files) with this helper into a component (docs/GUIDE-C.md).
 *
 * What the host calls and what the helper does:
 * - `init(config)` once per instance: `processor_init(config)`. It returns
 *   false to refuse the processor, after `pt_config_fail` or `pt_fail` set
 *   the reason. `pt_set_outputs` (during init) names the outputs; the
 *   default is one output, `default`.
 * - `process(batch)` once per batch: each record is read in place from the
 *   batch and passed to `processor_process`. `pt_reject` rejects that record
 *   only, discarding what it had emitted (state writes stay, as in Rust);
 *   the host sends it to the stage's dead-letter topic. A trap (`abort`, an
 *   out-of-bounds access) fails the batch, and the host retries it record by
 *   record in a fresh instance.
 * - `on-timer(stream_time, wall_time)`: `processor_on_timer` if the
 *   processor defines it, else no outputs.
 *
 * Text is UTF-8 with a length (`pt_str`), never NUL-terminated: keys and
 * values may hold any byte. Everything a processor is given is borrowed for
 * the call it is given in.
 */
#ifndef PARTITA_H
#define PARTITA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Bytes (or UTF-8 text) borrowed from the host's buffers. */
typedef struct pt_str {
    const uint8_t *ptr;
    size_t len;
} pt_str;

/** `s` (a NUL-terminated C string) as a `pt_str`. */
pt_str pt_cstr(const char *s);

/** The arguments of `%.*s` that print `pt_str` `s` with printf. */
#define PT_FMT(s) (int)(s).len, (const char *)(s).ptr

/** Whether `a` and `b` hold the same bytes. */
bool pt_str_eq(pt_str a, pt_str b);

/** One input record. */
typedef struct pt_record {
    /** The topic it was read from. */
    pt_str topic;
    /** Its partition and offset there. */
    int32_t partition;
    int64_t offset;
    /** Milliseconds since the Unix epoch. */
    int64_t timestamp_ms;
    /** The key and value; `ptr` is NULL when absent (a tombstone's value). */
    pt_str key;
    pt_str value;
    /** Number of headers; read them with `pt_header` or `pt_header_at`. */
    uint32_t n_headers;
    /** Internal: the encoded headers. */
    const uint8_t *headers_;
    size_t headers_len_;
} pt_record;

/** Header `i` (0 <= i < n_headers) of `record`. */
void pt_header_at(const pt_record *record, uint32_t i, pt_str *name, pt_str *value);

/** The value of the first header named `name`; false if none. */
bool pt_header(const pt_record *record, pt_str name, pt_str *value);

/** The stage's configuration: `key = value` pairs as given. */
typedef struct pt_config pt_config;

/** The value of `key` (the last one given); false if missing. */
bool pt_config_get(const pt_config *config, const char *key, pt_str *value);

/**
 * The value of `key`, which must be given and not blank; else refuses with
 * "config key `KEY`: is required but missing" (or "... but empty").
 */
bool pt_config_require(const pt_config *config, const char *key, pt_str *value);

/**
 * The value of `key` split at commas, each item trimmed, empty items
 * dropped, into `items` (an array the caller frees with `free`); `*n` is 0
 * and `*items` NULL when the key is missing.
 */
void pt_config_list(const pt_config *config, const char *key, pt_str **items, size_t *n);

/**
 * Parses `key` as `true` or `false` (trimmed), `fallback` when missing;
 * else refuses as the Rust SDK does.
 */
bool pt_config_bool(const pt_config *config, const char *key, bool fallback, bool *out);

/**
 * Refuses, naming the first key that is not one of the `n` `known` ones,
 * so that a misspelt key is reported instead of silently ignored.
 */
bool pt_config_check_keys(const pt_config *config, const char *const *known, size_t n);

/**
 * Sets the reason init fails with to "config key `KEY`: " then `fmt`
 * formatted as by printf, which knows `%s`, `%.*s` (`"%.*s", PT_FMT(s)`
 * prints a `pt_str`), `%d`, `%u`, `%zu`, `%lld`, `%llu` and `%%`; another
 * conversion traps. Returns false.
 */
bool pt_config_fail(const char *key, const char *fmt, ...);

/** Sets the reason init fails with (`fmt` as for `pt_config_fail`); returns false. */
bool pt_fail(const char *fmt, ...);

/** Names the outputs (during init); the default is one, `default`. */
void pt_set_outputs(const char *const *names, size_t n);

/** Where a processor sends what it makes of one record. */
typedef struct pt_emitter pt_emitter;

/**
 * Emits `value` to output 0, keeping the input's key, headers and
 * timestamp.
 */
void pt_emit_value(pt_emitter *out, const void *value, size_t len);

/**
 * Emits to output `output` (an index into the names of `pt_set_outputs`):
 * `key` and `value` NULL keep the input's, a `pt_str` with a NULL `ptr`
 * is absent; headers and timestamp are kept. In `processor_on_timer`,
 * which has no input, keeping means absent.
 */
void pt_emit(pt_emitter *out, uint32_t output, const pt_str *key, const pt_str *value);

/**
 * Rejects the record with a reason (`fmt` as for `pt_config_fail`),
 * discarding what it had emitted; later emits for it are ignored.
 */
void pt_reject(pt_emitter *out, const char *fmt, ...);

/**
 * The record's value as UTF-8 text; else rejects it as the Rust SDK does
 * ("record has no value", "value is not UTF-8: invalid byte at offset N")
 * and returns false.
 */
bool pt_value_str(const pt_record *record, pt_emitter *out, pt_str *text);

/** Length of the longest prefix of `bytes` that is valid UTF-8. */
size_t pt_utf8_valid_up_to(const uint8_t *bytes, size_t len);

/** `s` without leading and trailing Unicode white space (Rust's `str::trim`). */
pt_str pt_trim(pt_str s);

/** The first `chars` characters of UTF-8 text `s` (all of it if shorter). */
pt_str pt_prefix_chars(pt_str s, size_t chars);

/** Bytes owned by the caller, freed with `pt_owned_free`. */
typedef struct pt_owned {
    uint8_t *ptr;
    size_t len;
} pt_owned;

/** Frees what `value` holds. */
void pt_owned_free(pt_owned *value);

/**
 * The state stored under `key` for this stage and partition, into `value`;
 * false if none. Reads see the writes already made in the same call.
 */
bool pt_state_get(pt_str key, pt_owned *value);

/** Stores `value` under `key`. */
void pt_state_put(pt_str key, pt_str value);

/** Removes `key`. */
void pt_state_delete(pt_str key);

/** Log levels of `pt_log`. */
typedef enum pt_level { PT_TRACE, PT_DEBUG, PT_INFO, PT_WARN, PT_ERROR } pt_level;

/** Writes one line (`fmt` as for `pt_config_fail`) to the host's log. */
void pt_log(pt_level level, const char *fmt, ...);

/** Implemented by the processor: prepares it; false refuses it. */
bool processor_init(const pt_config *config);

/** Implemented by the processor: handles one record. */
void processor_process(const pt_record *record, pt_emitter *out);

/**
 * Optionally implemented by the processor: called when time passes
 * (milliseconds since the Unix epoch); emits with `pt_emit`.
 */
void processor_on_timer(int64_t stream_time, int64_t wall_time, pt_emitter *out)
    __attribute__((weak));

#endif
