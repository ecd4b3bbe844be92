// A pipeline of tasks written as a coroutine: each document goes through
// three stages, each a task in the pool. The coroutine waits with co_await,
// so every document is in flight at once while no thread blocks; it resumes
// on the pool's result thread. The same pipeline is then built as a
// dependency graph (AsyncResult arguments), and the two are checked against
// a serial run.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

int count_vowels(const std::vector<std::string>& words) {
  int n = 0;
  for (const auto& w : words) {
    for (char c : w) n += std::string("aeiouAEIOU").find(c) != std::string::npos;
  }
  return n;
}

std::string report(const std::string& title, int vowels) { return title + ": " + std::to_string(vowels) + " vowels"; }

// One document's trip through the stages. It returns at its first co_await;
// its AsyncResult completes at its co_return.
procpool::AsyncResult<std::string> process(procpool::Pool& pool, std::string title, std::string text) {
  const std::vector<std::string> words = co_await pool.apply_async(split_words, text);
  const int vowels = co_await pool.apply_async(count_vowels, words);
  co_return co_await pool.apply_async(report, title, vowels);
}

}  // namespace

int main() {
  const std::vector<std::pair<std::string, std::string>> documents = {
      {"multiprocessing", "multiprocessing is a package that supports spawning processes"},
      {"pool", "a pool of worker processes to which jobs can be submitted"},
      {"process", "process objects represent activity that is run in a separate process"},
      {"queue", "queues are thread and process safe"},
  };
  procpool::Pool pool(2);

  // Coroutines: all four pipelines run at once.
  std::vector<procpool::AsyncResult<std::string>> lines;
  for (const auto& [title, text] : documents) lines.push_back(process(pool, title, text));
  for (auto& line : procpool::as_completed(lines)) std::printf("coroutine: %s\n", line.get().c_str());

  // The same graph without coroutines: each task waits for its arguments.
  std::vector<procpool::AsyncResult<int>> counts;
  for (const auto& [title, text] : documents) {
    auto words = pool.apply_async(split_words, text);
    counts.push_back(pool.apply_async(count_vowels, words));
  }
  const std::vector<int> all = procpool::when_all(counts).get();
  int total = 0;
  for (int n : all) total += n;
  std::printf("dependencies: total %d vowels\n", total);

  int serial = 0;
  for (const auto& doc : documents) serial += count_vowels(split_words(doc.second));
  std::printf("serial: total %d vowels\n", serial);
  std::printf(total == serial ? "ok\n" : "MISMATCH\n");
  return total == serial ? 0 : 1;
}
