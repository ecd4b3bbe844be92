// The link between procpool::mpi::Pool and the Runtime it runs on.
#pragma once

#include <memory>

#include "engine/mpi/mpi_core.hpp"

namespace procpool::mpi::detail {

// A new pool's engine on the current Runtime's manager. ValueError if there is
// no Runtime, or it has no worker rank.
std::shared_ptr<MpiCore> make_pool_core();

}  // namespace procpool::mpi::detail
