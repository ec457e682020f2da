#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    const char *s;
    int bad;
} jp;

static void ws(jp *p)
{
    while (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t')
        p->s++;
}

static jnode *value(jp *p, int depth);

static void put_utf8(buf_t *b, unsigned cp)
{
    if (cp < 0x80) {
        buf_u8(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        buf_u8(b, (uint8_t)(0xC0 | cp >> 6));
        buf_u8(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_u8(b, (uint8_t)(0xE0 | cp >> 12));
        buf_u8(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        buf_u8(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        buf_u8(b, (uint8_t)(0xF0 | cp >> 18));
        buf_u8(b, (uint8_t)(0x80 | ((cp >> 12) & 0x3F)));
        buf_u8(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        buf_u8(b, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

static char *string(jp *p)
{
    buf_t b = {0};
    if (*p->s != '"') {
        p->bad = 1;
        return NULL;
    }
    p->s++;
    while (*p->s && *p->s != '"') {
        if (*p->s != '\\') {
            buf_u8(&b, (uint8_t)*p->s++);
            continue;
        }
        p->s++;
        char e = *p->s++;
        const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
        const char *m = e ? strchr(map, e) : NULL;
        if (e == 'u') {
            unsigned cp = 0;
            if (sscanf(p->s, "%4x", &cp) != 1) {
                p->bad = 1;
                break;
            }
            p->s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p->s[0] == '\\' && p->s[1] == 'u') {
                unsigned lo = 0;
                if (sscanf(p->s + 2, "%4x", &lo) == 1 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p->s += 6;
                }
            }
            put_utf8(&b, cp);
        } else if (m && (m - map) % 2 == 0) {
            buf_u8(&b, (uint8_t)m[1]);
        } else {
            p->bad = 1;
            break;
        }
    }
    if (*p->s != '"')
        p->bad = 1;
    else
        p->s++;
    buf_u8(&b, 0);
    return (char *)b.p;
}

static jnode *node(jtype t)
{
    jnode *n = xcalloc(1, sizeof *n);
    n->type = t;
    return n;
}

static jnode *container(jp *p, int depth, char close, int object)
{
    jnode *n = node(object ? J_OBJ : J_ARR), **tail = &n->child;
    p->s++;
    ws(p);
    if (*p->s == close) {
        p->s++;
        return n;
    }
    while (!p->bad) {
        char *key = NULL;
        ws(p);
        if (object) {
            key = string(p);
            ws(p);
            if (*p->s++ != ':')
                p->bad = 1;
        }
        jnode *v = p->bad ? NULL : value(p, depth + 1);
        if (!v) {
            free(key);
            p->bad = 1;
            break;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        ws(p);
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s == close) {
            p->s++;
            break;
        }
        p->bad = 1;
    }
    return n;
}

static jnode *value(jp *p, int depth)
{
    ws(p);
    if (depth > 64) {
        p->bad = 1;
        return NULL;
    }
    char c = *p->s;
    if (c == '{')
        return container(p, depth, '}', 1);
    if (c == '[')
        return container(p, depth, ']', 0);
    if (c == '"') {
        jnode *n = node(J_STR);
        n->str = string(p);
        return n;
    }
    if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
        jnode *n = node(J_BOOL);
        n->boolean = c == 't';
        p->s += n->boolean ? 4 : 5;
        return n;
    }
    if (!strncmp(p->s, "null", 4)) {
        p->s += 4;
        return node(J_NULL);
    }
    char *end;
    double d = strtod(p->s, &end);
    if (end == p->s) {
        p->bad = 1;
        return NULL;
    }
    jnode *n = node(J_NUM);
    n->num = d;
    n->str = strndup(p->s, (size_t)(end - p->s));
    p->s = end;
    return n;
}

jnode *json_parse(const char *text)
{
    jp p = {text, 0};
    jnode *n = value(&p, 0);
    ws(&p);
    if (p.bad || *p.s) {
        json_free(n);
        return NULL;
    }
    return n;
}

void json_free(jnode *n)
{
    while (n) {
        jnode *next = n->next;
        json_free(n->child);
        free(n->key);
        free(n->str);
        free(n);
        n = next;
    }
}

jnode *json_get(const jnode *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (jnode *c = obj->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key))
            return c;
    return NULL;
}

const char *json_str(const jnode *obj, const char *key)
{
    jnode *n = json_get(obj, key);
    return n && n->type == J_STR ? n->str : NULL;
}

int64_t json_int(const jnode *obj, const char *key, int64_t fallback)
{
    jnode *n = json_get(obj, key);
    return n && n->type == J_NUM ? strtoll(n->str, NULL, 10) : fallback;
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_put(&b, chunk, n);
    fclose(f);
    buf_u8(&b, 0);
    if (len)
        *len = b.len - 1;
    return (char *)b.p;
}
