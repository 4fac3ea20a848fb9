// Plugins that must fail to load, one per FAULT_* definition (CMakeLists.txt builds each).
#include "concbench/user.hpp"

#if defined(FAULT_no_symbol)
// A shared library, but not a plugin: no concbench_plugin_register.
extern "C" int not_a_plugin() {
  return 1;
}
#elif defined(FAULT_abi)
// Built against a later user.hpp: it answers with its own version and registers nothing.
extern "C" int concbench_plugin_register(concbench::PluginRegistry*, int) {
  return CONCBENCH_PLUGIN_ABI + 1;
}
#elif defined(FAULT_throws)
CONCBENCH_PLUGIN(reg) {
  (void)reg;
  throw std::runtime_error("this plugin refuses to register");
}
#endif
