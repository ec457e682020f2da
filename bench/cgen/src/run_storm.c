#include "gen.h"
const mode_ops storm_ops;
void storm_setup(gen *g) { (void)g; die("todo"); }
