// How a task (callable + arguments) and its result are written and read.
//
// A task payload is: the CodeRef of its invoker (an instantiation of
// invoke_task), then the callable (a CodeRef for a function pointer, the
// cereal-serialized object for a function object, nothing for a captureless
// lambda), then the arguments. The worker resolves the invoker and calls it.
#pragma once

#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cereal/details/traits.hpp>

#include "procpool/detail/buffer.hpp"
#include "procpool/detail/code_ref.hpp"
#include "procpool/detail/wire_archive.hpp"
#include "procpool/errors.hpp"

namespace procpool::detail {

// An argument travels as its decayed type; C strings travel as std::string.
template <class T>
struct wire_type {
  using type = std::decay_t<T>;
};
template <class T>
  requires std::is_same_v<std::decay_t<T>, const char*> || std::is_same_v<std::decay_t<T>, char*>
struct wire_type<T> {
  using type = std::string;
};
template <class T>
using wire_t = typename wire_type<T>::type;

template <class F>
concept FunctionPointer = std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

template <class T>
concept Serializable = cereal::traits::is_output_serializable<T, WireOutputArchive>::value &&
                       cereal::traits::is_input_serializable<T, WireInputArchive>::value;

template <class F>
concept SerializableFunctionObject = std::is_class_v<F> && Serializable<F> && std::is_default_constructible_v<F>;

// A captureless lambda (or empty function object): re-created in the worker by default construction.
template <class F>
concept StatelessFunctionObject = std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F> &&
                                  std::is_trivially_copyable_v<F>;

template <class F>
concept Sendable = FunctionPointer<F> || SerializableFunctionObject<F> || StatelessFunctionObject<F>;

template <class F, class... Args>
using task_result_t = std::decay_t<std::invoke_result_t<F&, wire_t<Args>...>>;

template <class F, class... Args>
constexpr void check_task() {
  static_assert(Sendable<F>,
                "procpool: a task callable must be a free function, a captureless lambda, or a function object "
                "serializable with cereal; a capturing lambda cannot be sent to another process (pass what it "
                "captures as arguments instead)");
  static_assert(std::is_invocable_v<F&, wire_t<Args>...>,
                "procpool: the task callable cannot be called with these arguments");
  static_assert((Serializable<wire_t<Args>> && ...),
                "procpool: task arguments must be serializable with cereal (a cereal/types header for std types, "
                "or a serialize/save/load function for your own)");
  using R = task_result_t<F, Args...>;
  static_assert(std::is_void_v<R> || (Serializable<R> && std::is_default_constructible_v<R>),
                "procpool: a task's result type must be default-constructible and serializable with cereal");
}

// Runs a stage of the worker's decoding and turns any failure into SerializationError.
template <class Stage>
decltype(auto) as_serialization_stage(const char* what, Stage&& stage) {
  try {
    return stage();
  } catch (const SerializationError&) {
    throw;
  } catch (const std::exception& e) {
    throw SerializationError(std::string("procpool: cannot ") + what + ": " + e.what());
  } catch (...) {
    throw SerializationError(std::string("procpool: cannot ") + what);
  }
}

// The callable on the wire: a CodeRef for a function pointer, the object for
// a serializable function object, nothing for a captureless lambda.
template <class F>
void save_callable(WireOutputArchive& output, const F& fn) {
  if constexpr (FunctionPointer<F>) {
    const CodeRef ref = code_ref_of_function(fn);
    output(ref.module, ref.offset);
  } else if constexpr (SerializableFunctionObject<F>) {
    output(fn);
  }
}

template <class F>
F load_callable(WireInputArchive& input) {
  return as_serialization_stage("deserialize the task callable", [&]() -> F {
    if constexpr (FunctionPointer<F>) {
      CodeRef ref;
      input(ref.module, ref.offset);
      return function_from_code_ref<std::remove_pointer_t<F>>(ref);
    } else if constexpr (SerializableFunctionObject<F>) {
      F object{};
      input(object);
      return object;
    } else {
      return F{};
    }
  });
}

// The worker side of one task type: read callable and arguments, call, write the result.
template <class F, class... A>
void invoke_task(InputBuffer& in, OutputBuffer& out) {
  WireInputArchive input(in);
  F fn = load_callable<F>(input);
  std::tuple<A...> args;
  as_serialization_stage("deserialize the task arguments",
                         [&] { std::apply([&](auto&... a) { (input(a), ...); }, args); });
  using R = std::decay_t<std::invoke_result_t<F&, A...>>;
  if constexpr (std::is_void_v<R>) {
    std::apply(fn, std::move(args));
  } else {
    R result = std::apply(fn, std::move(args));
    as_serialization_stage("serialize the task result", [&] {
      WireOutputArchive output(out);
      output(result);
    });
  }
}

using Invoker = void (*)(InputBuffer&, OutputBuffer&);

// An argument as it goes on the wire: itself, or converted (C string to std::string).
template <class A>
decltype(auto) as_wire(const A& arg) {
  if constexpr (std::is_same_v<wire_t<A>, std::decay_t<A>>) {
    return (arg);
  } else {
    return wire_t<A>(arg);
  }
}

// Writes the whole task payload. Runs in the submitting thread.
template <class F, class... Args>
void encode_task(OutputBuffer& out, const F& fn, const Args&... args) {
  static const CodeRef invoker = code_ref_of_function(&invoke_task<F, wire_t<Args>...>);
  WireOutputArchive output(out);
  output(invoker.module, invoker.offset);
  save_callable(output, fn);
  (output(as_wire(args)), ...);
}

}  // namespace procpool::detail
