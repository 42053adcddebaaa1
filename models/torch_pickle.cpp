// pytorch_model.bin reader (models/torch_pickle.h).
#include "models/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <variant>

#include "core/error.h"

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

Ptr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
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

}  // namespace

std::map<std::string, torch::Tensor> read_torch_state_dict(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    throw UsageError("'" + path + "' is not a torch.save zip file (" + std::string(e.what()).substr(0, 120) + ")");
  }
  if (!zip->hasRecord("data.pkl")) throw UsageError("'" + path + "' holds no data.pkl");
  auto [pkl_ptr, pkl_size] = zip->getRecord("data.pkl");
  const auto* p = static_cast<const unsigned char*>(pkl_ptr.get());
  size_t pos = 0;
  auto bad = [&](const std::string& what) {
    return UsageError("'" + path + "': data.pkl at byte " + std::to_string(pos) + ": " + what);
  };
  auto need = [&](size_t n) {
    if (pos + n > pkl_size) throw bad("truncated");
  };
  auto read_le = [&](size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[pos + k]) << (8 * k);
    pos += n;
    return v;
  };
  auto read_line = [&] {
    std::string s;
    while (pos < pkl_size && p[pos] != '\n') s += static_cast<char>(p[pos++]);
    ++pos;
    return s;
  };

  std::vector<Ptr> stack;
  std::map<uint64_t, Ptr> memo;
  auto pop = [&] {
    if (stack.empty()) throw bad("stack underflow");
    Ptr v = stack.back();
    stack.pop_back();
    return v;
  };
  auto pop_to_mark = [&] {
    std::vector<Ptr> items;
    while (!stack.empty() && stack.back()->kind != Value::kMark) items.push_back(pop());
    if (stack.empty()) throw bad("no MARK");
    stack.pop_back();
    std::reverse(items.begin(), items.end());
    return items;
  };
  auto tuple = [&](std::vector<Ptr> items) {
    auto t = make(Value::kTuple);
    t->items = std::move(items);
    return t;
  };

  for (;;) {
    need(1);
    const unsigned char op = p[pos++];
    switch (op) {
      case 0x80: read_le(1); break;                                   // PROTO
      case '.': goto done;                                             // STOP
      case 'c': {                                                      // GLOBAL: an allowlist, nothing else
        auto g = make(Value::kGlobal);
        const std::string module = read_line();
        g->s = module + "." + read_line();
        if (g->s != "collections.OrderedDict" && g->s != "torch._utils._rebuild_tensor_v2") {
          storage_type(g->s, path);  // throws for anything that is not a known storage type
        }
        stack.push_back(g);
        break;
      }
      case 'q': memo[read_le(1)] = stack.back(); break;               // BINPUT
      case 'r': memo[read_le(4)] = stack.back(); break;               // LONG_BINPUT
      case 'h': stack.push_back(memo.at(read_le(1))); break;          // BINGET
      case 'j': stack.push_back(memo.at(read_le(4))); break;          // LONG_BINGET
      case '(': stack.push_back(make(Value::kMark)); break;           // MARK
      case ')': stack.push_back(tuple({})); break;                    // EMPTY_TUPLE
      case 't': stack.push_back(tuple(pop_to_mark())); break;         // TUPLE
      case 0x85: { auto a = pop(); stack.push_back(tuple({a})); break; }
      case 0x86: { auto b = pop(), a = pop(); stack.push_back(tuple({a, b})); break; }
      case 0x87: { auto c = pop(), b = pop(), a = pop(); stack.push_back(tuple({a, b, c})); break; }
      case '}': stack.push_back(make(Value::kDict)); break;           // EMPTY_DICT
      case ']': stack.push_back(make(Value::kList)); break;           // EMPTY_LIST
      case 'N': stack.push_back(make(Value::kNone)); break;
      case 0x88: case 0x89: { auto b = make(Value::kBool); b->i = op == 0x88; stack.push_back(b); break; }
      case 'K': { auto v = make(Value::kInt); v->i = static_cast<int64_t>(read_le(1)); stack.push_back(v); break; }
      case 'M': { auto v = make(Value::kInt); v->i = static_cast<int64_t>(read_le(2)); stack.push_back(v); break; }
      case 'J': { auto v = make(Value::kInt); v->i = static_cast<int32_t>(read_le(4)); stack.push_back(v); break; }
      case 0x8a: {                                                     // LONG1
        const size_t n = read_le(1);
        uint64_t raw = read_le(n);
        auto v = make(Value::kInt);
        v->i = (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) ? static_cast<int64_t>(raw | (~uint64_t{0} << (8 * n)))
                                                            : static_cast<int64_t>(raw);
        stack.push_back(v);
        break;
      }
      case 'G': {                                                      // BINFLOAT (big-endian)
        need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[pos + k];
        pos += 8;
        auto v = make(Value::kFloat);
        std::memcpy(&v->f, &bits, 8);
        stack.push_back(v);
        break;
      }
      case 'X': case 0x8c: {                                           // BINUNICODE / SHORT_BINUNICODE
        const size_t n = read_le(op == 'X' ? 4 : 1);
        need(n);
        auto v = make(Value::kStr);
        v->s.assign(reinterpret_cast<const char*>(p + pos), n);
        pos += n;
        stack.push_back(v);
        break;
      }
      case 'a': { auto x = pop(); stack.back()->items.push_back(x); break; }  // APPEND
      case 'e': { auto xs = pop_to_mark(); for (auto& x : xs) stack.back()->items.push_back(x); break; }
      case 's': { auto v = pop(), k = pop(); stack.back()->entries.emplace_back(k, v); break; }  // SETITEM
      case 'u': {                                                      // SETITEMS
        auto xs = pop_to_mark();
        if (xs.size() % 2) throw bad("odd SETITEMS");
        for (size_t k = 0; k < xs.size(); k += 2) stack.back()->entries.emplace_back(xs[k], xs[k + 1]);
        break;
      }
      case 'b': pop(); break;                                          // BUILD: state of an OrderedDict, ignored
      case 'Q': {                                                      // BINPERSID: ('storage', type, key, location, numel)
        auto pid = pop();
        if (pid->kind != Value::kTuple || pid->items.size() < 5 || pid->items[0]->s != "storage") throw bad("unknown persistent id");
        const auto type = storage_type(pid->items[1]->s, path);
        const std::string key = pid->items[2]->s;
        const int64_t numel = pid->items[4]->i;
        if (!zip->hasRecord("data/" + key)) throw bad("storage 'data/" + key + "' is missing from the zip");
        auto [ptr, size] = zip->getRecord("data/" + key);
        auto t = torch::empty({numel}, type);
        if (size < static_cast<size_t>(numel) * t.element_size()) throw bad("storage 'data/" + key + "' is too short");
        std::memcpy(t.data_ptr(), ptr.get(), static_cast<size_t>(numel) * t.element_size());
        auto v = make(Value::kTensor);
        v->tensor = t;
        stack.push_back(v);
        break;
      }
      case 'R': {                                                      // REDUCE
        auto args = pop(), fn = pop();
        if (fn->kind != Value::kGlobal) throw bad("REDUCE of a non-global");
        if (fn->s == "collections.OrderedDict") {
          stack.push_back(make(Value::kDict));
        } else if (fn->s == "torch._utils._rebuild_tensor_v2") {
          const auto& a = args->items;
          if (a.size() < 4 || a[0]->kind != Value::kTensor) throw bad("bad _rebuild_tensor_v2 arguments");
          std::vector<int64_t> size, stride;
          for (const auto& x : a[2]->items) size.push_back(x->i);
          for (const auto& x : a[3]->items) stride.push_back(x->i);
          auto v = make(Value::kTensor);
          v->tensor = a[0]->tensor.as_strided(size, stride, a[1]->i).clone();
          stack.push_back(v);
        } else {
          throw bad("unsupported callable " + fn->s);
        }
        break;
      }
      default:
        throw bad("unsupported pickle opcode 0x" + [&] { char b[8]; std::snprintf(b, sizeof b, "%02x", op); return std::string(b); }());
    }
  }
done:
  if (stack.size() != 1 || stack.back()->kind != Value::kDict) throw UsageError("'" + path + "': data.pkl is not a state dict");
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : stack.back()->entries) {
    if (k->kind != Value::kStr || v->kind != Value::kTensor) throw UsageError("'" + path + "': a state dict entry is not name -> tensor");
    out[k->s] = v->tensor;
  }
  return out;
}

}  // namespace attnscope::models
