#include "concbench/exec_context.hpp"

namespace concbench {

void ExecHooks::on_break(ExecContext& ctx) {
  ctx.throw_if_cancelled();
}

}  // namespace concbench
