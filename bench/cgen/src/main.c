#include <stdio.h>
#include <string.h>

int selftest_main(const char *dir);

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "selftest"))
        return selftest_main(argc >= 3 ? argv[2] : "spec/vectors");
    fprintf(stderr, "usage: cgen selftest [VECTORS_DIR]\n");
    return 2;
}
