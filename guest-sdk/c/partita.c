/*
 * The C helper's implementation: reads batches and writes results in the
 * byte layout of wit/processor.wit (version 1), and wraps the WIT bindings
 * that `wit-bindgen c` generates (stage.h) for the processor.
 */
#include "partita.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"

/* ---- bytes and text ---------------------------------------------------- */

pt_str pt_cstr(const char *s) {
    return (pt_str){(const uint8_t *)s, strlen(s)};
}

bool pt_str_eq(pt_str a, pt_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

size_t pt_utf8_valid_up_to(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (b >= 0xc2 && b <= 0xdf) {
            n = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            n = 3;
            if (b == 0xe0) lo = 0xa0;      /* no overlong forms */
            else if (b == 0xed) hi = 0x9f; /* no surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
            n = 4;
            if (b == 0xf0) lo = 0x90;      /* no overlong forms */
            else if (b == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
        } else {
            return i;
        }
        if (i + 1 >= len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80) return i;
        }
        i += n;
    }
    return len;
}

/* The code point starting at s[*i] (valid UTF-8), advancing *i. */
static uint32_t next_char(const uint8_t *s, size_t *i) {
    uint8_t b = s[*i];
    if (b < 0x80) {
        *i += 1;
        return b;
    }
    size_t n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    uint32_t c = b & (0x7f >> n);
    for (size_t k = 1; k < n; k++) c = (c << 6) | (s[*i + k] & 0x3f);
    *i += n;
    return c;
}

/* Unicode White_Space, the set Rust's `char::is_whitespace` tests. */
static bool is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

pt_str pt_trim(pt_str s) {
    size_t start = 0;
    while (start < s.len) {
        size_t next = start;
        if (!is_whitespace(next_char(s.ptr, &next))) break;
        start = next;
    }
    size_t end = s.len;
    while (end > start) {
        size_t from = end - 1;
        while (from > start && (s.ptr[from] & 0xc0) == 0x80) from--;
        size_t at = from;
        if (!is_whitespace(next_char(s.ptr, &at))) break;
        end = from;
    }
    return (pt_str){s.ptr + start, end - start};
}

pt_str pt_prefix_chars(pt_str s, size_t chars) {
    size_t i = 0;
    while (i < s.len && chars > 0) {
        next_char(s.ptr, &i);
        chars--;
    }
    return (pt_str){s.ptr, i};
}

void pt_owned_free(pt_owned *value) {
    free(value->ptr);
    value->ptr = NULL;
    value->len = 0;
}

/* A growable byte buffer. */
typedef struct buf {
    uint8_t *ptr;
    size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = realloc(b->ptr, cap);
    if (!p) abort();
    b->ptr = p;
    b->cap = cap;
}

static void buf_put(buf *b, const void *bytes, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->ptr + b->len, bytes, n);
    b->len += n;
}

static void buf_u8(buf *b, uint8_t v) { buf_put(b, &v, 1); }

static void buf_u32(buf *b, uint32_t v) {
    uint8_t le[4] = {v, v >> 8, v >> 16, v >> 24};
    buf_put(b, le, 4);
}

static void buf_set_u32(buf *b, size_t at, uint32_t v) {
    uint8_t le[4] = {v, v >> 8, v >> 16, v >> 24};
    memcpy(b->ptr + at, le, 4);
}

/* Appends the decimal digits of `v`, after a minus sign if `negative`. */
static void buf_decimal(buf *b, bool negative, unsigned long long v) {
    char digits[24];
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (negative) buf_u8(b, '-');
    buf_put(b, digits + sizeof digits - n, n);
}

/*
 * Appends `fmt` formatted as by printf, for the conversions a reason needs:
 * `%s`, `%.*s`, `%d`, `%u`, `%zu`, `%lld`, `%llu` and `%%`. (printf itself
 * would link stdio, which imports WASI files the host does not grant.)
 */
static void buf_vprintf(buf *b, const char *fmt, va_list args) {
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *next = strchr(p, '%');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            buf_put(b, p, n);
            p += n - 1;
            continue;
        }
        p++;
        if (*p == '%') {
            buf_u8(b, '%');
        } else if (*p == 's') {
            const char *s = va_arg(args, const char *);
            buf_put(b, s, strlen(s));
        } else if (p[0] == '.' && p[1] == '*' && p[2] == 's') {
            int n = va_arg(args, int);
            const char *s = va_arg(args, const char *);
            buf_put(b, s, n > 0 ? (size_t)n : 0);
            p += 2;
        } else if (*p == 'd') {
            int v = va_arg(args, int);
            buf_decimal(b, v < 0, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
        } else if (*p == 'u') {
            buf_decimal(b, false, va_arg(args, unsigned));
        } else if (p[0] == 'z' && p[1] == 'u') {
            buf_decimal(b, false, va_arg(args, size_t));
            p++;
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'd') {
            long long v = va_arg(args, long long);
            buf_decimal(b, v < 0, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
            p += 2;
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'u') {
            buf_decimal(b, false, va_arg(args, unsigned long long));
            p += 2;
        } else {
            /* A conversion this formatter does not know: a bug in the
             * processor's format string, caught by its first test. */
            abort();
        }
    }
}

/* ---- reading the batch ------------------------------------------------- */

/* A cursor over an encoded buffer from the host; a malformed buffer is a
 * broken contract, so it traps (the host reports the failed batch). */
typedef struct reader {
    const uint8_t *p, *end;
} reader;

static void need(const reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) abort();
}

static uint8_t read_u8(reader *r) {
    need(r, 1);
    return *r->p++;
}

static uint32_t read_u32(reader *r) {
    need(r, 4);
    const uint8_t *p = r->p;
    r->p += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_u64(reader *r) {
    uint64_t lo = read_u32(r);
    return lo | (uint64_t)read_u32(r) << 32;
}

static pt_str read_bytes(reader *r) {
    uint32_t n = read_u32(r);
    need(r, n);
    pt_str s = {r->p, n};
    r->p += n;
    return s;
}

static pt_str read_opt(reader *r) {
    const uint8_t *at = r->p;
    if (read_u32(r) == UINT32_MAX) return (pt_str){NULL, 0};
    r->p = at;
    return read_bytes(r);
}

void pt_header_at(const pt_record *record, uint32_t i, pt_str *name, pt_str *value) {
    if (i >= record->n_headers) abort();
    reader r = {record->headers_, record->headers_ + record->headers_len_};
    for (uint32_t k = 0; k < i; k++) {
        read_bytes(&r);
        read_bytes(&r);
    }
    *name = read_bytes(&r);
    *value = read_bytes(&r);
}

bool pt_header(const pt_record *record, pt_str name, pt_str *value) {
    for (uint32_t i = 0; i < record->n_headers; i++) {
        pt_str n, v;
        pt_header_at(record, i, &n, &v);
        if (pt_str_eq(n, name)) {
            *value = v;
            return true;
        }
    }
    return false;
}

/* ---- configuration ----------------------------------------------------- */

struct pt_config {
    const stage_tuple2_string_string_t *pairs;
    size_t n;
};

/* Why init failed, when it did. */
static buf init_error;

static pt_str str_of(const stage_string_t *s) { return (pt_str){s->ptr, s->len}; }

bool pt_config_get(const pt_config *config, const char *key, pt_str *value) {
    pt_str k = pt_cstr(key);
    for (size_t i = config->n; i-- > 0;) {
        if (pt_str_eq(str_of(&config->pairs[i].f0), k)) {
            *value = str_of(&config->pairs[i].f1);
            return true;
        }
    }
    return false;
}

bool pt_config_fail(const char *key, const char *fmt, ...) {
    init_error.len = 0;
    buf_put(&init_error, "config key `", 12);
    buf_put(&init_error, key, strlen(key));
    buf_put(&init_error, "`: ", 3);
    va_list args;
    va_start(args, fmt);
    buf_vprintf(&init_error, fmt, args);
    va_end(args);
    return false;
}

bool pt_fail(const char *fmt, ...) {
    init_error.len = 0;
    va_list args;
    va_start(args, fmt);
    buf_vprintf(&init_error, fmt, args);
    va_end(args);
    return false;
}

bool pt_config_require(const pt_config *config, const char *key, pt_str *value) {
    if (!pt_config_get(config, key, value)) return pt_config_fail(key, "is required but missing");
    if (pt_trim(*value).len == 0) return pt_config_fail(key, "is required but empty");
    return true;
}

void pt_config_list(const pt_config *config, const char *key, pt_str **items, size_t *n) {
    *items = NULL;
    *n = 0;
    pt_str v;
    if (!pt_config_get(config, key, &v)) return;
    size_t commas = 0;
    for (size_t i = 0; i < v.len; i++) commas += v.ptr[i] == ',';
    *items = malloc((commas + 1) * sizeof **items);
    if (!*items) abort();
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.ptr[i] != ',') continue;
        pt_str item = pt_trim((pt_str){v.ptr + start, i - start});
        if (item.len > 0) (*items)[(*n)++] = item;
        start = i + 1;
    }
}

bool pt_config_bool(const pt_config *config, const char *key, bool fallback, bool *out) {
    pt_str v;
    if (!pt_config_get(config, key, &v)) {
        *out = fallback;
        return true;
    }
    pt_str t = pt_trim(v);
    if (pt_str_eq(t, pt_cstr("true")) || pt_str_eq(t, pt_cstr("false"))) {
        *out = t.len == 4;
        return true;
    }
    return pt_config_fail(key, "cannot parse `%.*s`: provided string was not `true` or `false`",
                          PT_FMT(v));
}

bool pt_config_check_keys(const pt_config *config, const char *const *known, size_t n) {
    for (size_t i = 0; i < config->n; i++) {
        pt_str k = str_of(&config->pairs[i].f0);
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) found = pt_str_eq(k, pt_cstr(known[j]));
        if (found) continue;
        /* The key may hold any text: format it by length, not as a C string. */
        init_error.len = 0;
        buf_put(&init_error, "config key `", 12);
        buf_put(&init_error, k.ptr, k.len);
        if (n == 0) {
            const char *rest = "`: unknown key (this processor takes no configuration)";
            buf_put(&init_error, rest, strlen(rest));
            return false;
        }
        const char *rest = "`: unknown key (known keys: ";
        buf_put(&init_error, rest, strlen(rest));
        for (size_t j = 0; j < n; j++) {
            if (j > 0) buf_put(&init_error, ", ", 2);
            buf_put(&init_error, known[j], strlen(known[j]));
        }
        buf_u8(&init_error, ')');
        return false;
    }
    return true;
}

static const char *const default_outputs[] = {"default"};
static const char *const *outputs = default_outputs;
static size_t n_outputs = 1;

void pt_set_outputs(const char *const *names, size_t n) {
    outputs = names;
    n_outputs = n;
}

/* ---- results ----------------------------------------------------------- */

struct pt_emitter {
    buf out;
    /* Where the current record's result starts, and its outputs' count. */
    size_t result_at;
    uint32_t n_outputs;
    bool rejected;
    /* Timer outputs have no input to keep things from. */
    bool timer;
};

#define KEEP 0xfffffffeu
#define ABSENT 0xffffffffu

static void put_field(buf *b, const pt_str *field, bool timer) {
    if (field == NULL) {
        buf_u32(b, timer ? ABSENT : KEEP);
    } else if (field->ptr == NULL) {
        buf_u32(b, ABSENT);
    } else {
        buf_u32(b, (uint32_t)field->len);
        buf_put(b, field->ptr, field->len);
    }
}

void pt_emit(pt_emitter *out, uint32_t output, const pt_str *key, const pt_str *value) {
    if (out->rejected) return;
    if (output >= n_outputs) abort();
    buf_u32(&out->out, output);
    put_field(&out->out, key, out->timer);
    put_field(&out->out, value, out->timer);
    buf_u32(&out->out, out->timer ? 0 : KEEP); /* headers */
    buf_u8(&out->out, 0);                      /* timestamp: keep */
    out->n_outputs++;
}

void pt_emit_value(pt_emitter *out, const void *value, size_t len) {
    pt_str v = {value, len};
    pt_emit(out, 0, NULL, &v);
}

void pt_reject(pt_emitter *out, const char *fmt, ...) {
    if (out->rejected || out->timer) return;
    out->rejected = true;
    out->out.len = out->result_at;
    buf_u8(&out->out, 1);
    size_t len_at = out->out.len;
    buf_u32(&out->out, 0);
    va_list args;
    va_start(args, fmt);
    buf_vprintf(&out->out, fmt, args);
    va_end(args);
    buf_set_u32(&out->out, len_at, (uint32_t)(out->out.len - len_at - 4));
}

bool pt_value_str(const pt_record *record, pt_emitter *out, pt_str *text) {
    if (record->value.ptr == NULL) {
        pt_reject(out, "record has no value");
        return false;
    }
    size_t valid = pt_utf8_valid_up_to(record->value.ptr, record->value.len);
    if (valid < record->value.len) {
        pt_reject(out, "value is not UTF-8: invalid byte at offset %zu", valid);
        return false;
    }
    *text = record->value;
    return true;
}

/* ---- the exports ------------------------------------------------------- */

bool exports_partita_processor_processor_init(exports_partita_processor_processor_config_t *config,
                                              stage_list_string_t *ret, stage_string_t *err) {
    pt_config c = {config->ptr, config->len};
    init_error.len = 0;
    bool ok = processor_init(&c);
    exports_partita_processor_processor_config_free(config);
    if (!ok) {
        if (init_error.len == 0) pt_fail("processor_init failed without a reason");
        stage_string_dup_n(err, (const char *)init_error.ptr, init_error.len);
        return false;
    }
    ret->len = n_outputs;
    ret->ptr = malloc(n_outputs * sizeof *ret->ptr);
    if (!ret->ptr) abort();
    for (size_t i = 0; i < n_outputs; i++) stage_string_dup(&ret->ptr[i], outputs[i]);
    return true;
}

void exports_partita_processor_processor_process(stage_list_u8_t *batch, stage_list_u8_t *ret) {
    reader r = {batch->ptr, batch->ptr + batch->len};
    if (read_u8(&r) != 1) abort();
    uint32_t n_topics = read_u32(&r);
    pt_str *topics = malloc((n_topics ? n_topics : 1) * sizeof *topics);
    if (!topics) abort();
    for (uint32_t i = 0; i < n_topics; i++) topics[i] = read_bytes(&r);
    uint32_t n_records = read_u32(&r);

    pt_emitter out = {0};
    buf_reserve(&out.out, 5 + (size_t)n_records * 32);
    buf_u8(&out.out, 1);
    buf_u32(&out.out, n_records);
    for (uint32_t i = 0; i < n_records; i++) {
        pt_record record;
        uint32_t topic = read_u32(&r);
        if (topic >= n_topics) abort();
        record.topic = topics[topic];
        record.partition = (int32_t)read_u32(&r);
        record.offset = (int64_t)read_u64(&r);
        record.timestamp_ms = (int64_t)read_u64(&r);
        record.key = read_opt(&r);
        record.value = read_opt(&r);
        record.n_headers = read_u32(&r);
        record.headers_ = r.p;
        for (uint32_t h = 0; h < record.n_headers; h++) {
            read_bytes(&r);
            read_bytes(&r);
        }
        record.headers_len_ = (size_t)(r.p - record.headers_);

        out.result_at = out.out.len;
        out.n_outputs = 0;
        out.rejected = false;
        buf_u8(&out.out, 0);
        buf_u32(&out.out, 0);
        processor_process(&record, &out);
        if (!out.rejected) buf_set_u32(&out.out, out.result_at + 1, out.n_outputs);
    }
    free(topics);
    stage_list_u8_free(batch);
    ret->ptr = out.out.ptr;
    ret->len = out.out.len;
}

void exports_partita_processor_processor_on_timer(int64_t stream_time, int64_t wall_time,
                                                  stage_list_u8_t *ret) {
    pt_emitter out = {0};
    out.timer = true;
    buf_u8(&out.out, 1);
    buf_u32(&out.out, 0);
    if (processor_on_timer) processor_on_timer(stream_time, wall_time, &out);
    buf_set_u32(&out.out, 1, out.n_outputs);
    ret->ptr = out.out.ptr;
    ret->len = out.out.len;
}

/* ---- state and log ----------------------------------------------------- */

/* The bindings take mutable pointers but do not write through them. */
static stage_list_u8_t list_of(pt_str s) { return (stage_list_u8_t){(uint8_t *)s.ptr, s.len}; }

bool pt_state_get(pt_str key, pt_owned *value) {
    stage_list_u8_t k = list_of(key), v;
    if (!partita_processor_state_get(&k, &v)) return false;
    value->ptr = v.ptr;
    value->len = v.len;
    return true;
}

void pt_state_put(pt_str key, pt_str value) {
    stage_list_u8_t k = list_of(key), v = list_of(value);
    partita_processor_state_put(&k, &v);
}

void pt_state_delete(pt_str key) {
    stage_list_u8_t k = list_of(key);
    partita_processor_state_delete(&k);
}

void pt_log(pt_level level, const char *fmt, ...) {
    buf line = {0};
    va_list args;
    va_start(args, fmt);
    buf_vprintf(&line, fmt, args);
    va_end(args);
    stage_string_t message = {line.ptr, line.len};
    partita_processor_log_log((partita_processor_log_level_t)level, &message);
    free(line.ptr);
}
