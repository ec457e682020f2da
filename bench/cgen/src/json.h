/* A small JSON reader for the self-test's vector files: a tree of nodes, objects kept in file order. */
#ifndef CGEN_JSON_H
#define CGEN_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jnode {
    jtype type;
    char *key;     /* the member name inside an object */
    char *str;     /* J_STR: the decoded string; J_NUM: the number's text */
    double num;
    int boolean;
    struct jnode *child, *next;
} jnode;

jnode *json_parse(const char *text); /* NULL on a syntax error */
void json_free(jnode *n);
jnode *json_get(const jnode *obj, const char *key); /* member or NULL */
const char *json_str(const jnode *obj, const char *key); /* string member or NULL */
int64_t json_int(const jnode *obj, const char *key, int64_t fallback);
char *read_file(const char *path, size_t *len); /* NUL-terminated, or NULL */

#endif
