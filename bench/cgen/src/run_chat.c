#include "gen.h"
const mode_ops chat_ops;
void chat_setup(gen *g, int closed_loop) { (void)g; (void)closed_loop; die("todo"); }
