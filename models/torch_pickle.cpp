// pytorch_model.bin reader (models/torch_pickle.h).
#include "models/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <tuple>
#include <variant>

#include "core/core.h"

namespace attnscope::models {
namespace {

struct Value;
using Ptr = std::shared_ptr<Value>;
struct Value {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kTensor, kMark } kind = kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                               // string, or "module.name" of a global
  std::vector<Ptr> items;                      // tuple / list
  std::vector<std::pair<Ptr, Ptr>> entries;    // dict (ordered)
  torch::Tensor tensor;                        // a storage (1-D) or a rebuilt tensor
};

// Owns every value the pickle machine makes. A hostile pickle can put a list inside itself (BINGET
// + APPEND) or nest containers thousands deep; clearing each value's children here, at the end,
// frees cycles and destroys deep nests without recursion.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() {
    for (auto& v : all_) {
      v->items.clear();
      v->entries.clear();
    }
  }
  Ptr make(Value::Kind k) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    all_.push_back(v);
    return v;
  }

 private:
  std::vector<Ptr> all_;
};

// a * b, or false when it overflows int64 (operands >= 0).
bool mul_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

// PyTorchStreamReader allocates the uncompressed size a record's central-directory entry claims
// before it extracts the record (its constructor does so for "version"), so a corrupt or hostile
// file could make it ask for terabytes. This reads the central directory as miniz does and refuses
// any entry claiming more than the file could hold: a stored entry (torch.save stores every
// record) lies inside the file; deflate expands at most 1032:1.
void check_zip_entry_sizes(const std::string& path) {
  auto bad = [&](const std::string& what) {
    return UsageError("'" + path + "' is not a torch.save zip file (" + what + ")");
  };
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UsageError("cannot read '" + path + "'");
  const auto end = in.tellg();
  if (end < 0) throw UsageError("cannot read '" + path + "'");
  const uint64_t file_size = static_cast<uint64_t>(end);
  auto read_at = [&](uint64_t offset, uint64_t n) {
    if (offset > file_size || n > file_size - offset) throw bad("a record points outside the file");
    std::string b(static_cast<size_t>(n), '\0');
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(b.data(), static_cast<std::streamsize>(n));
    if (!in) throw UsageError("cannot read '" + path + "'");
    return b;
  };
  auto le = [](const std::string& b, size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + k])) << (8 * k);
    return v;
  };
  constexpr size_t kEnd = 22, kLocator = 20, kEnd64 = 56, kEntry = 46;
  if (file_size < kEnd) throw bad("too short for a zip");
  // The end-of-central-directory record: the last signature with room for its 22 bytes, within
  // the 64 KiB comment limit of the end (miniz searches the same way).
  const uint64_t tail_at = file_size > 70000 ? file_size - 70000 : 0;
  const std::string tail = read_at(tail_at, file_size - tail_at);
  size_t eocd = std::string::npos;
  for (size_t i = tail.size() - kEnd + 1; i-- > 0;) {
    if (le(tail, i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) throw bad("no end of central directory");
  uint64_t entries = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_offset = le(tail, eocd + 16, 4);
  const uint64_t eocd_at = tail_at + eocd;
  if (eocd_at >= kLocator + kEnd64) {  // zip64: a locator just before, pointing at the zip64 record
    const std::string locator = read_at(eocd_at - kLocator, kLocator);
    if (le(locator, 0, 4) == 0x07064b50) {
      const uint64_t at = le(locator, 8, 8);
      if (at > file_size - kEnd64) throw bad("bad zip64 locator");
      const std::string end64 = read_at(at, kEnd64);
      if (le(end64, 0, 4) == 0x06064b50) {
        entries = le(end64, 32, 8);
        cd_size = le(end64, 40, 8);
        cd_offset = le(end64, 48, 8);
      }
    }
  }
  if (cd_offset > file_size || cd_size > file_size - cd_offset) throw bad("central directory outside the file");
  const std::string cd = read_at(cd_offset, cd_size);
  size_t at = 0;
  for (uint64_t e = 0; e < entries; ++e) {
    if (cd.size() - at < kEntry || le(cd, at, 4) != 0x02014b50) throw bad("bad central directory");
    const uint64_t method = le(cd, at + 10, 2), name_len = le(cd, at + 28, 2), extra_len = le(cd, at + 30, 2),
                   comment_len = le(cd, at + 32, 2);
    uint64_t comp = le(cd, at + 20, 4), uncomp = le(cd, at + 24, 4), local = le(cd, at + 42, 4);
    if (kEntry + name_len + extra_len + comment_len > cd.size() - at) throw bad("bad central directory");
    if (std::max({comp, uncomp, local}) == 0xFFFFFFFF) {  // the zip64 extra field, read as miniz reads it
      size_t x = at + kEntry + name_len;
      const size_t x_end = x + extra_len;
      while (x + 4 <= x_end) {
        const uint64_t id = le(cd, x, 2), len = le(cd, x + 2, 2);
        if (x + 4 + len > x_end) break;
        if (id == 1) {
          size_t f = x + 4;
          if (uncomp == 0xFFFFFFFF && f + 8 <= x + 4 + len) uncomp = le(cd, f, 8);
          break;
        }
        x += 4 + len;
      }
    }
    if (uncomp > (method == 0 ? file_size : file_size * 1032)) {
      throw bad("an entry claims " + std::to_string(uncomp) + " bytes, more than a file of " +
                std::to_string(file_size) + " bytes holds");
    }
    at += kEntry + name_len + extra_len + comment_len;
  }
}

torch::ScalarType storage_type(const std::string& global, const std::string& path) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"torch.FloatStorage", torch::kFloat}, {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},   {"torch.IntStorage", torch::kInt},
      {"torch.ByteStorage", torch::kByte},   {"torch.BoolStorage", torch::kBool}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) {
    throw UsageError("'" + path + "': the pickle names the global '" + global + "', which a state dict does not "
                     "use; refusing to load it (a checkpoint must never run code)");
  }
  return it->second;
}

// The restricted unpickler of a state dict's data.pkl: the opcodes torch.save writes for dicts of
// tensors, an allowlist of globals (OrderedDict, _rebuild_tensor_v2, storage types), storages read
// from the zip once per dtype, every size, stride and offset checked before a tensor is built.
class Unpickler {
 public:
  Unpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& zip, const unsigned char* p, size_t size)
      : path_(path), zip_(zip), p_(p), size_(size) {}

  std::map<std::string, torch::Tensor> state_dict() {
    for (;;) {
      need(1);
      const unsigned char op = p_[pos_++];
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1 || stack_.back()->kind != Value::kDict) throw UsageError("'" + path_ + "': data.pkl is not a state dict");
    std::map<std::string, torch::Tensor> out;
    for (const auto& [k, v] : stack_.back()->entries) {
      if (k->kind != Value::kStr || v->kind != Value::kTensor) throw UsageError("'" + path_ + "': a state dict entry is not name -> tensor");
      out[k->s] = v->tensor;
    }
    return out;
  }

 private:
  UsageError bad(const std::string& what) const {
    return UsageError("'" + path_ + "': data.pkl at byte " + std::to_string(pos_) + ": " + what);
  }
  void need(size_t n) const {
    if (pos_ + n > size_) throw bad("truncated");
  }
  uint64_t read_le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p_[pos_ + k]) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string read_line() {
    std::string s;
    while (pos_ < size_ && p_[pos_] != '\n') s += static_cast<char>(p_[pos_++]);
    if (pos_ >= size_) throw bad("truncated");
    ++pos_;
    return s;
  }
  Ptr make(Value::Kind k) { return arena_.make(k); }
  Value& top() {
    if (stack_.empty()) throw bad("stack underflow");
    return *stack_.back();
  }
  Ptr pop() {
    if (stack_.empty()) throw bad("stack underflow");
    Ptr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<Ptr> pop_to_mark() {
    std::vector<Ptr> items;
    while (!stack_.empty() && stack_.back()->kind != Value::kMark) items.push_back(pop());
    if (stack_.empty()) throw bad("no MARK");
    stack_.pop_back();
    std::reverse(items.begin(), items.end());
    return items;
  }
  Ptr tuple(std::vector<Ptr> items) {
    auto t = make(Value::kTuple);
    t->items = std::move(items);
    return t;
  }
  void push_int(int64_t i) {
    auto v = make(Value::kInt);
    v->i = i;
    stack_.push_back(v);
  }

  void step(unsigned char op) {
    if (step_structure(op) || step_scalar(op)) return;
    switch (op) {
      case 'Q': persistent_storage(); break;                           // BINPERSID
      case 'R': reduce(); break;                                       // REDUCE
      default: {
        char b[8];
        std::snprintf(b, sizeof b, "%02x", op);
        throw bad("unsupported pickle opcode 0x" + std::string(b));
      }
    }
  }

  // Opcodes that build containers, mark, memoise: true when `op` was one.
  bool step_structure(unsigned char op) {
    switch (op) {
      case 0x80: read_le(1); return true;                              // PROTO
      case 'c': global(); return true;                                 // GLOBAL
      case 'q': { const auto k = read_le(1); top(); memo_[k] = stack_.back(); return true; }  // BINPUT
      case 'r': { const auto k = read_le(4); top(); memo_[k] = stack_.back(); return true; }  // LONG_BINPUT
      case 'h': case 'j': {                                            // BINGET / LONG_BINGET
        auto it = memo_.find(read_le(op == 'h' ? 1 : 4));
        if (it == memo_.end()) throw bad("BINGET of a memo key never put");
        stack_.push_back(it->second);
        return true;
      }
      case '(': stack_.push_back(make(Value::kMark)); return true;     // MARK
      case ')': stack_.push_back(tuple({})); return true;              // EMPTY_TUPLE
      case 't': stack_.push_back(tuple(pop_to_mark())); return true;   // TUPLE
      case 0x85: { auto a = pop(); stack_.push_back(tuple({a})); return true; }
      case 0x86: { auto b = pop(), a = pop(); stack_.push_back(tuple({a, b})); return true; }
      case 0x87: { auto c = pop(), b = pop(), a = pop(); stack_.push_back(tuple({a, b, c})); return true; }
      case '}': stack_.push_back(make(Value::kDict)); return true;     // EMPTY_DICT
      case ']': stack_.push_back(make(Value::kList)); return true;     // EMPTY_LIST
      case 'a': { auto x = pop(); top().items.push_back(x); return true; }  // APPEND
      case 'e': { auto xs = pop_to_mark(); auto& l = top(); for (auto& x : xs) l.items.push_back(x); return true; }
      case 's': { auto v = pop(), k = pop(); top().entries.emplace_back(k, v); return true; }  // SETITEM
      case 'u': {                                                      // SETITEMS
        auto xs = pop_to_mark();
        if (xs.size() % 2) throw bad("odd SETITEMS");
        auto& d = top();
        for (size_t k = 0; k < xs.size(); k += 2) d.entries.emplace_back(xs[k], xs[k + 1]);
        return true;
      }
      case 'b': pop(); return true;                                    // BUILD: state of an OrderedDict, ignored
      default: return false;
    }
  }

  // Opcodes that push a scalar (None, bools, ints, floats, strings): true when `op` was one.
  bool step_scalar(unsigned char op) {
    switch (op) {
      case 'N': stack_.push_back(make(Value::kNone)); return true;
      case 0x88: case 0x89: { auto b = make(Value::kBool); b->i = op == 0x88; stack_.push_back(b); return true; }
      case 'K': push_int(static_cast<int64_t>(read_le(1))); return true;
      case 'M': push_int(static_cast<int64_t>(read_le(2))); return true;
      case 'J': push_int(static_cast<int32_t>(read_le(4))); return true;
      case 0x8a: {                                                     // LONG1
        const size_t n = read_le(1);
        if (n > 8) throw bad("LONG1 of " + std::to_string(n) + " bytes: a state dict's ints fit in 8");
        uint64_t raw = read_le(n);
        push_int((n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) ? static_cast<int64_t>(raw | (~uint64_t{0} << (8 * n)))
                                                              : static_cast<int64_t>(raw));
        return true;
      }
      case 'G': {                                                      // BINFLOAT (big-endian)
        need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p_[pos_ + k];
        pos_ += 8;
        auto v = make(Value::kFloat);
        std::memcpy(&v->f, &bits, 8);
        stack_.push_back(v);
        return true;
      }
      case 'X': case 0x8c: {                                           // BINUNICODE / SHORT_BINUNICODE
        const size_t n = read_le(op == 'X' ? 4 : 1);
        need(n);
        auto v = make(Value::kStr);
        v->s.assign(reinterpret_cast<const char*>(p_ + pos_), n);
        pos_ += n;
        stack_.push_back(v);
        return true;
      }
      default: return false;
    }
  }

  // GLOBAL: an allowlist, nothing else
  void global() {
    auto g = make(Value::kGlobal);
    const std::string module = read_line();
    g->s = module + "." + read_line();
    if (g->s != "collections.OrderedDict" && g->s != "torch._utils._rebuild_tensor_v2") {
      storage_type(g->s, path_);  // throws for anything that is not a known storage type
    }
    stack_.push_back(g);
  }

  // BINPERSID: ('storage', type, key, location, numel) -> the storage's first numel elements
  void persistent_storage() {
    auto pid = pop();
    if (pid->kind != Value::kTuple || pid->items.size() < 5 || pid->items[0]->s != "storage") throw bad("unknown persistent id");
    const auto type = storage_type(pid->items[1]->s, path_);
    const std::string key = pid->items[2]->s;
    const int64_t numel = pid->items[4]->i;
    if (numel < 0) throw bad("storage 'data/" + key + "' has " + std::to_string(numel) + " elements");
    auto& storage = storages_[{key, type}];
    if (!storage.defined()) {  // the whole record, as elements of `type`
      if (!zip_.hasRecord("data/" + key)) throw bad("storage 'data/" + key + "' is missing from the zip");
      at::DataPtr ptr;
      size_t size = 0;
      std::tie(ptr, size) = zip_.getRecord("data/" + key);
      const auto element_size = static_cast<size_t>(c10::elementSize(type));
      storage = torch::empty({static_cast<int64_t>(size / element_size)}, type);
      if (size >= element_size) std::memcpy(storage.data_ptr(), ptr.get(), size / element_size * element_size);
      rebuild_budget_ += 4 * static_cast<int64_t>(std::min<size_t>(size, size_t{1} << 56));
    }
    if (numel > storage.numel()) throw bad("storage 'data/" + key + "' is too short");
    auto v = make(Value::kTensor);
    v->tensor = storage.narrow(0, 0, numel);
    stack_.push_back(v);
  }

  void reduce() {
    auto args = pop(), fn = pop();
    if (fn->kind != Value::kGlobal) throw bad("REDUCE of a non-global");
    if (fn->s == "collections.OrderedDict") {
      stack_.push_back(make(Value::kDict));
    } else if (fn->s == "torch._utils._rebuild_tensor_v2") {
      stack_.push_back(rebuild_tensor(args->items));
    } else {
      throw bad("unsupported callable " + fn->s);
    }
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, ...): in bounds of the storage, checked here
  // rather than left to as_strided; then within budget.
  Ptr rebuild_tensor(const std::vector<Ptr>& a) {
    if (a.size() < 4 || a[0]->kind != Value::kTensor) throw bad("bad _rebuild_tensor_v2 arguments");
    std::vector<int64_t> size, stride;
    for (const auto& x : a[2]->items) size.push_back(x->i);
    for (const auto& x : a[3]->items) stride.push_back(x->i);
    const auto& storage = a[0]->tensor;
    const int64_t offset = a[1]->i;
    if (size.size() != stride.size() || offset < 0) throw bad("bad _rebuild_tensor_v2 size, stride or offset");
    int64_t numel = 1, last = offset;
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) throw bad("bad _rebuild_tensor_v2 size or stride");
      if (!mul_ok(numel, size[d], &numel)) throw bad("_rebuild_tensor_v2 size overflows");
    }
    if (numel > 0) {
      for (size_t d = 0; d < size.size(); ++d) {
        int64_t reach = 0;
        if (!mul_ok(size[d] - 1, stride[d], &reach) || !add_ok(last, reach, &last)) throw bad("_rebuild_tensor_v2 stride overflows");
      }
      if (last >= storage.numel()) throw bad("tensor reaches past the end of its storage");
    }
    int64_t bytes = 0;
    if (!mul_ok(numel, static_cast<int64_t>(storage.element_size()), &bytes) || bytes > rebuild_budget_) {
      throw bad("tensor of " + std::to_string(numel) + " elements is larger than the file's storages allow");
    }
    rebuild_budget_ -= bytes;
    auto v = make(Value::kTensor);
    v->tensor = storage.as_strided(size, stride, storage.storage_offset() + offset).clone();
    return v;
  }

  const std::string& path_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  const unsigned char* p_;
  size_t size_;
  size_t pos_ = 0;
  Arena arena_;  // declared before the stack and the memo: destroyed after them
  std::vector<Ptr> stack_;
  std::map<uint64_t, Ptr> memo_;
  // Each storage record is read once per dtype (tied weights share one); tensors are views of it.
  std::map<std::pair<std::string, torch::ScalarType>, torch::Tensor> storages_;
  // Bytes the rebuilt tensors may take in all: 256 MiB plus 4x the storage records read. A state
  // dict's tensors are views of its storages, so only aliases (tied weights) and expanded views
  // count twice; a pickle that rebuilds one storage thousands of times, or views it with stride 0
  // at an enormous size, is refused before allocating.
  int64_t rebuild_budget_ = int64_t{256} << 20;
};

}  // namespace

std::map<std::string, torch::Tensor> read_torch_state_dict(const std::string& path) {
  check_zip_entry_sizes(path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    throw UsageError("'" + path + "' is not a torch.save zip file (" + without_trace(e.what(), 160) + ")");
  }
  if (!zip->hasRecord("data.pkl")) throw UsageError("'" + path + "' holds no data.pkl");
  at::DataPtr pkl_ptr;
  size_t pkl_size = 0;
  std::tie(pkl_ptr, pkl_size) = zip->getRecord("data.pkl");
  return Unpickler(path, *zip, static_cast<const unsigned char*>(pkl_ptr.get()), pkl_size).state_dict();
}

}  // namespace attnscope::models
