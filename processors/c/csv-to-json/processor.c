/*
 * csv-to-json in C: the port of processors/csv-to-json (Rust), with the same
 * configuration keys, output bytes and rejection reasons.
 *
 * Parses a legacy CSV line (the record's value) into a JSON object, one
 * member per configured column, in column order. The key, headers and
 * timestamp are kept.
 *
 * Configuration:
 *   columns      required; column names, comma-separated: `id,name,amount`
 *   delimiter    one character between fields; default `,`; `tab` or `\t`
 *   numeric      columns emitted as JSON numbers, comma-separated
 *   skip_header  `true`: a line whose fields are exactly the column names is
 *                dropped (accepted, no output); default `false`
 *
 * Parsing and rejections: see processors/csv-to-json/src/lib.rs.
 */
#include <stdlib.h>
#include <string.h>

#include "partita.h"

/* One configured column. */
typedef struct column {
    pt_str name;
    /* `"name":`, escaped once at init. */
    char *prefix;
    size_t prefix_len;
    bool numeric;
} column;

/* The configuration, read once per instance. */
static column *columns;
static size_t n_columns;
/* The delimiter as UTF-8 (one character, 1 to 4 bytes). */
static pt_str delimiter;
static bool skip_header;

/* A growable text buffer, reused from record to record. */
typedef struct text {
    char *ptr;
    size_t len, cap;
} text;

static void put(text *t, const void *bytes, size_t n) {
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n) cap *= 2;
        t->ptr = realloc(t->ptr, cap);
        if (!t->ptr) abort();
        t->cap = cap;
    }
    memcpy(t->ptr + t->len, bytes, n);
    t->len += n;
}

static void put_char(text *t, char c) { put(t, &c, 1); }

/* Appends `s` as a JSON string literal. */
static void put_json_string(text *t, pt_str s) {
    static const char hex[] = "0123456789abcdef";
    put_char(t, '"');
    size_t start = 0;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t b = s.ptr[i];
        const char *escape;
        switch (b) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        default:
            if (b >= 0x20) continue;
            escape = NULL;
        }
        put(t, s.ptr + start, i - start);
        if (escape) {
            put(t, escape, strlen(escape));
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 0xf]};
            put(t, u, sizeof u);
        }
        start = i + 1;
    }
    put(t, s.ptr + start, s.len - start);
    put_char(t, '"');
}

static bool all_digits(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
    }
    return true;
}

/* Appends the legacy number `field` as a JSON number (`null` if blank);
 * false if it is not a number. */
static bool put_json_number(text *t, pt_str field) {
    pt_str s = pt_trim(field);
    if (s.len == 0) {
        put(t, "null", 4);
        return true;
    }
    const uint8_t *p = s.ptr, *end = s.ptr + s.len;
    bool negative = *p == '-';
    if (*p == '-' || *p == '+') p++;
    const uint8_t *e = p;
    while (e < end && *e != 'e' && *e != 'E') e++;
    const uint8_t *dot = p;
    while (dot < e && *dot != '.') dot++;
    const uint8_t *frac = dot < e ? dot + 1 : e;
    size_t int_len = (size_t)(dot - p), frac_len = (size_t)(e - frac);
    if ((int_len == 0 && frac_len == 0) || !all_digits(p, int_len) || !all_digits(frac, frac_len))
        return false;
    if (e < end) {
        const uint8_t *body = e + 1;
        if (body < end && (*body == '+' || *body == '-')) body++;
        if (body == end || !all_digits(body, (size_t)(end - body))) return false;
    }
    if (negative) put_char(t, '-');
    while (int_len > 0 && *p == '0') {
        p++;
        int_len--;
    }
    if (int_len == 0) put_char(t, '0');
    else put(t, p, int_len);
    if (frac_len > 0) {
        put_char(t, '.');
        put(t, frac, frac_len);
    }
    if (e < end) {
        put_char(t, 'e');
        put(t, e + 1, (size_t)(end - e - 1));
    }
    return true;
}

static bool starts_with(pt_str s, pt_str prefix) {
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

/* The first `needle` in `s` at or after `from`; s.len if none. */
static size_t find(pt_str s, size_t from, pt_str needle) {
    for (size_t i = from; i + needle.len <= s.len; i++) {
        if (memcmp(s.ptr + i, needle.ptr, needle.len) == 0) return i;
    }
    return s.len;
}

/* One parsed field: borrowed from the line, or unescaped into `owned`. */
typedef struct field {
    pt_str text;
    text owned;
} field;

/* The fields of the current line, reused from record to record. */
static field *fields;
static size_t fields_cap;

static field *next_field(size_t n) {
    if (n == fields_cap) {
        fields_cap = fields_cap ? fields_cap * 2 : 16;
        fields = realloc(fields, fields_cap * sizeof *fields);
        if (!fields) abort();
        memset(fields + n, 0, (fields_cap - n) * sizeof *fields);
    }
    fields[n].owned.len = 0;
    return &fields[n];
}

/* Splits one line into fields (see the Rust crate's docs for the quoting
 * rules); the count, or rejects the record and returns SIZE_MAX. */
static size_t split(pt_str line, pt_emitter *out) {
    static const pt_str quote = {(const uint8_t *)"\"", 1};
    size_t n = 0;
    pt_str rest = line;
    for (;;) {
        size_t index = n + 1;
        field *f = next_field(n++);
        if (!starts_with(rest, quote)) {
            size_t end = find(rest, 0, delimiter);
            f->text = (pt_str){rest.ptr, end};
            if (end == rest.len) return n;
            rest = (pt_str){rest.ptr + end + delimiter.len, rest.len - end - delimiter.len};
            continue;
        }
        /* A quoted field: find its closing quote, unescaping `""`. */
        pt_str quoted = {rest.ptr + 1, rest.len - 1};
        bool unescaped = false;
        size_t from = 0, q;
        for (;;) {
            q = find(quoted, from, quote);
            if (q == quoted.len) {
                pt_reject(out, "unterminated quote in field %zu", index);
                return SIZE_MAX;
            }
            if (q + 1 < quoted.len && quoted.ptr[q + 1] == '"') {
                put(&f->owned, quoted.ptr + from, q + 1 - from);
                unescaped = true;
                from = q + 2;
                continue;
            }
            break;
        }
        if (unescaped) {
            put(&f->owned, quoted.ptr + from, q - from);
            f->text = (pt_str){(const uint8_t *)f->owned.ptr, f->owned.len};
        } else {
            f->text = (pt_str){quoted.ptr, q};
        }
        pt_str after = {quoted.ptr + q + 1, quoted.len - q - 1};
        if (after.len == 0) return n;
        if (!starts_with(after, delimiter)) {
            pt_reject(out, "unexpected character after the closing quote of field %zu", index);
            return SIZE_MAX;
        }
        rest = (pt_str){after.ptr + delimiter.len, after.len - delimiter.len};
    }
}

static bool read_delimiter(const pt_config *config) {
    pt_str raw;
    if (!pt_config_get(config, "delimiter", &raw)) {
        delimiter = pt_cstr(",");
        return true;
    }
    if (pt_str_eq(raw, pt_cstr("tab")) || pt_str_eq(raw, pt_cstr("\\t"))) {
        delimiter = pt_cstr("\t");
        return true;
    }
    pt_str one = pt_prefix_chars(raw, 1);
    if (one.len == 0 || one.len != raw.len)
        return pt_config_fail("delimiter", "must be one character (or `tab`), found `%.*s`",
                              PT_FMT(raw));
    if (one.len == 1 && (*one.ptr == '"' || *one.ptr == '\r' || *one.ptr == '\n'))
        return pt_config_fail("delimiter", "`%.*s` cannot be a delimiter", PT_FMT(raw));
    /* The configuration is freed after init: keep a copy. */
    uint8_t *copy = malloc(one.len);
    if (!copy) abort();
    memcpy(copy, one.ptr, one.len);
    delimiter = (pt_str){copy, one.len};
    return true;
}

/* A copy of `s` that outlives the configuration. */
static pt_str keep(pt_str s) {
    uint8_t *copy = malloc(s.len ? s.len : 1);
    if (!copy) abort();
    memcpy(copy, s.ptr, s.len);
    return (pt_str){copy, s.len};
}

bool processor_init(const pt_config *config) {
    static const char *const keys[] = {"columns", "delimiter", "numeric", "skip_header"};
    pt_str required;
    if (!pt_config_check_keys(config, keys, 4) || !pt_config_require(config, "columns", &required))
        return false;
    pt_str *names, *numeric;
    size_t n_names, n_numeric;
    pt_config_list(config, "columns", &names, &n_names);
    if (n_names == 0) {
        free(names);
        return pt_config_fail("columns", "lists no column");
    }
    pt_config_list(config, "numeric", &numeric, &n_numeric);
    bool ok = true;
    columns = calloc(n_names, sizeof *columns);
    if (!columns) abort();
    for (size_t i = 0; i < n_names && ok; i++) {
        for (size_t j = 0; j < i && ok; j++) {
            if (pt_str_eq(names[i], names[j]))
                ok = pt_config_fail("columns", "column `%.*s` is listed twice", PT_FMT(names[i]));
        }
        if (!ok) break;
        column *c = &columns[n_columns++];
        c->name = keep(names[i]);
        text prefix = {0};
        put_json_string(&prefix, c->name);
        put_char(&prefix, ':');
        c->prefix = prefix.ptr;
        c->prefix_len = prefix.len;
        for (size_t j = 0; j < n_numeric; j++) c->numeric |= pt_str_eq(numeric[j], c->name);
    }
    for (size_t j = 0; j < n_numeric && ok; j++) {
        bool known = false;
        for (size_t i = 0; i < n_columns; i++) known |= pt_str_eq(numeric[j], columns[i].name);
        if (!known)
            ok = pt_config_fail("numeric", "`%.*s` is not one of the columns", PT_FMT(numeric[j]));
    }
    free(names);
    free(numeric);
    return ok && read_delimiter(config) && pt_config_bool(config, "skip_header", false, &skip_header);
}

void processor_process(const pt_record *record, pt_emitter *out) {
    static text json;
    pt_str line;
    if (!pt_value_str(record, out, &line)) return;
    if (line.len > 0 && line.ptr[line.len - 1] == '\n') {
        line.len--;
        if (line.len > 0 && line.ptr[line.len - 1] == '\r') line.len--;
    }
    size_t n = split(line, out);
    if (n == SIZE_MAX) return;
    if (n != n_columns) {
        pt_reject(out, "expected %zu field%s, found %zu", n_columns, n_columns == 1 ? "" : "s", n);
        return;
    }
    if (skip_header) {
        bool header = true;
        for (size_t i = 0; i < n && header; i++) header = pt_str_eq(fields[i].text, columns[i].name);
        if (header) return;
    }
    json.len = 0;
    put_char(&json, '{');
    for (size_t i = 0; i < n; i++) {
        const column *c = &columns[i];
        if (i > 0) put_char(&json, ',');
        put(&json, c->prefix, c->prefix_len);
        if (!c->numeric) {
            put_json_string(&json, fields[i].text);
        } else if (!put_json_number(&json, fields[i].text)) {
            pt_reject(out, "column `%.*s` is not a number: `%.*s`", PT_FMT(c->name),
                      PT_FMT(pt_prefix_chars(fields[i].text, 40)));
            return;
        }
    }
    put_char(&json, '}');
    pt_emit_value(out, json.ptr, json.len);
}
