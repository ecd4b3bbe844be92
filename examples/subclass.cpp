// The two ways to make a child process: hand Process a function to run, or
// derive from Process and override run().
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <utility>

namespace {

// Way one: a target function and its arguments.
void task(const std::string& name) {
  std::cout << name << "'s task started\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::cout << name << "'s task finished\n";
}

// Way two: a subclass. run() is what the child executes; the parent only
// calls start(). Members are the child's own copy, made by fork().
class MyProcess : public procpool::Process {
 public:
  explicit MyProcess(std::string label) : label_(std::move(label)) {}

  void run() override {
    std::cout << label_ << ": task started in " << procpool::current_process().name << '\n';
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::cout << label_ << ": task finished\n";
  }

 private:
  std::string label_;
};

}  // namespace

int main() {
  // Whole lines at a time, and nothing unflushed for fork() to copy.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);

  procpool::Process p(task, std::string("cwz"));
  p.start();
  std::cout << "main process\n";
  p.join();

  MyProcess q("MyProcess");
  q.start();
  std::cout << "main process\n";
  q.join();
  std::cout << q.name() << " exitcode " << *q.exitcode() << '\n';
}
