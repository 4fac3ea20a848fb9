// Nothing references this object, so a program holds it only when linked with every object of
// the workloads library (concbench_plugin_host in CMakeLists.txt), and it is in the program's
// dynamic symbol table only when the program exports its symbols too: exactly when plugins can
// resolve against it. The loader looks it up (plugin_linux.cpp) to refuse a plugin with a reason
// instead of with dlopen's first missing symbol.
#include "concbench/user.hpp"

extern "C" __attribute__((visibility("default"))) const int concbench_plugin_host_abi =
    CONCBENCH_PLUGIN_ABI;
