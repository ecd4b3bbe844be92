// procpool: Python's multiprocessing.Pool for C++. The one header to include.
#pragma once

// The std types that tasks most often take and return, so they work out of the box.
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "procpool/async_result.hpp"
#include "procpool/errors.hpp"
#include "procpool/pool.hpp"
#include "procpool/task_pool.hpp"
#include "procpool/process.hpp"
#include "procpool/version.hpp"
