// The task vocabulary: what a run trains (data.task) and what follows from it (the metrics it
// reports, the model it needs, transformers' problem_type of its head, the files it writes), and
// the paths of a run directory. Every library names tasks and run files through these.
#pragma once

#include <string>
#include <vector>

namespace attnscope {

enum class TaskKind { MinMax, Regression, Classification, Multiclass, MaskedLM, CausalLM };

struct TaskTraits {
  TaskKind kind;
  std::string name;                  // data.task's value ("minmax", "regression", ..., "mlm", "clm")
  std::vector<std::string> metrics;  // what metrics.jsonl reports (train.best_metric's choices)
  std::vector<std::string> models;   // model.name values it trains
  std::string problem_type;          // the head's transformers problem_type ("" for none)
  std::vector<std::string> run_files;  // what it writes into the run directory beside the common files
  bool molecules = false;            // reads a CSV or corpus of sequences (SMILES or text); a transformer task
  bool supervised = false;           // has a labelled head (regression / classification)
};

// Every task, in data.task's documented order.
const std::vector<TaskTraits>& all_tasks();
const TaskTraits& traits(TaskKind kind);
// The task named `name`, or nullptr.
const TaskTraits* find_task(const std::string& name);
// The task named `name`; UsageError "`where`: unknown task 'NAME' (one of: ...)" otherwise.
const TaskTraits& task_named(const std::string& name, const std::string& where);
std::vector<std::string> task_names();

// The files of a run directory (attnscope train / pretrain): their names are written here only.
struct RunDir {
  std::string dir;

  static constexpr const char* kConfigYaml = "config.yaml";
  static constexpr const char* kTrainLog = "train.log";
  static constexpr const char* kMetrics = "metrics.jsonl";
  static constexpr const char* kAttention = "attention.h5";
  static constexpr const char* kCheckpoints = "checkpoints";
  static constexpr const char* kLastCheckpoint = "last.pt";
  static constexpr const char* kBestCheckpoint = "best.pt";
  static constexpr const char* kModelConfig = "config.json";  // Hugging Face config of the model
  static constexpr const char* kTargets = "targets.json";
  static constexpr const char* kVocab = "vocab.json";
  static constexpr const char* kMerges = "merges.txt";
  static constexpr const char* kSplit = "split.json";
  static constexpr const char* kTestMetrics = "test_metrics.json";
  static constexpr const char* kMechanism = "mechanism.json";
  static constexpr const char* kFigures = "figures";
  static constexpr const char* kReport = "report.html";
  static constexpr const char* kLock = ".attnscope.lock";

  std::string file(const std::string& name) const;  // DIR/NAME (as std::filesystem joins them)
  std::string config_yaml() const { return file(kConfigYaml); }
  std::string train_log() const { return file(kTrainLog); }
  std::string metrics() const { return file(kMetrics); }
  std::string attention() const { return file(kAttention); }
  std::string checkpoints() const { return file(kCheckpoints); }
  std::string last_checkpoint() const { return RunDir{checkpoints()}.file(kLastCheckpoint); }
  std::string best_checkpoint() const { return RunDir{checkpoints()}.file(kBestCheckpoint); }
  std::string model_config() const { return file(kModelConfig); }
  std::string targets() const { return file(kTargets); }
  std::string vocab() const { return file(kVocab); }
  std::string split() const { return file(kSplit); }
  std::string test_metrics() const { return file(kTestMetrics); }
  std::string mechanism() const { return file(kMechanism); }
  std::string lock() const { return file(kLock); }

  // Whether `dir` holds a run: config.yaml, metrics.jsonl or checkpoints/ (the one rule).
  static bool is_run(const std::string& dir);
  // The file name of the checkpoint kept at `epoch` (train.keep_every): epoch-NNNNNN.pt (the one
  // writer), and its parser: the epoch such a name holds, -1 for any other name (best.pt, last.pt).
  static std::string kept_checkpoint(int64_t epoch);
  static int64_t kept_epoch(const std::string& file_name);
};

}  // namespace attnscope
