// Small string and machine helpers every library uses: trimming, case, joining, problem lists,
// the CPU's vector extensions. Written once here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnscope {

// `s` without leading and trailing spaces, tabs and line breaks.
std::string trim(const std::string& s);
// ASCII lower case.
std::string lower(std::string s);
// The strings with `sep` between them.
std::string join(const std::vector<std::string>& parts, const std::string& sep = ", ");
std::string join(const std::vector<int64_t>& parts, const std::string& sep = ", ");
// `s` split at every `sep` (an empty `s` gives no parts; "a,,b" gives "a", "", "b").
std::vector<std::string> split(const std::string& s, char sep = ',');

// "HEADLINE" followed by one "\n  - problem" line per problem: the one layout of every error
// that reports several problems at once.
std::string problem_list(const std::string& headline, const std::vector<std::string>& problems);

// Standard base64 (RFC 4648, with padding) of the bytes of `in`.
std::string base64(const std::string& in);
// Whether this CPU runs AVX2 and FMA (checked once).
bool cpu_has_avx2_fma();

}  // namespace attnscope
