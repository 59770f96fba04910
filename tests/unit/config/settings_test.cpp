// The settings table: names are unique, every row can be parsed from where it
// can be written and dumped where it has a key, the layer's precedence, and
// the documentation lists every flag and key.
#include "config/settings.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/profile.hpp"

namespace cf::config {
namespace {

TEST(Settings, NamesAreUnique) {
  std::set<std::string_view> flags, keys;
  std::set<char> shorts;
  for (const Setting& s : settings()) {
    EXPECT_FALSE(s.flag.empty() && s.key.empty()) << "a row nobody can write";
    if (!s.flag.empty()) {
      EXPECT_TRUE(flags.insert(s.flag).second) << s.flag;
    }
    if (!s.key.empty()) {
      EXPECT_TRUE(keys.insert(s.key).second) << s.key;
    }
    if (s.short_flag) {
      EXPECT_TRUE(shorts.insert(s.short_flag).second) << s.short_flag;
    }
    EXPECT_NE(s.short_flag, 'h') << "-h is --help";
    EXPECT_NE(s.short_flag, 'V') << "-V is --version";
  }
}

TEST(Settings, EveryRowHasItsBehaviour) {
  for (const Setting& s : settings()) {
    std::string id = s.flag.empty() ? std::string(s.key) : s.long_flag();
    if (s.shape == Shape::Switch) {
      EXPECT_TRUE(s.parse_bool) << id;
    }
    else EXPECT_TRUE(s.parse) << id;
    if (s.field != kNoField) {
      EXPECT_TRUE(s.copy) << id;
    }
    if (!s.key.empty()) {
      EXPECT_TRUE(s.dump) << id << ": a key --dump-profile cannot write";
    }
    if (!s.flag.empty() && !s.hidden) {
      EXPECT_FALSE(s.help.empty()) << id;
    }
    if (s.shape != Shape::Switch && !s.flag.empty()) {
      EXPECT_FALSE(s.value_name.empty()) << id;
    }
  }
}

TEST(Settings, FindsFlagsAndKeys) {
  ASSERT_NE(find_flag("proxy"), nullptr);
  EXPECT_EQ(find_flag("proxy")->key, "proxy");
  EXPECT_EQ(find_short_flag('p'), find_flag("proxy"));
  EXPECT_EQ(find_key("allow_cidrs"), find_flag("allow-cidr"));
  EXPECT_EQ(find_flag("nope"), nullptr);
  EXPECT_EQ(find_key("root"), nullptr) << "--root is a flag only";
}

TEST(Settings, SuggestsTheClosestName) {
  EXPECT_EQ(flag_suggestion("prxy"), "did you mean `--proxy`?");
  EXPECT_EQ(flag_suggestion("allow-domian"), "did you mean `--allow-domain`?");
  EXPECT_EQ(flag_suggestion("hepl"), "did you mean `--help`?");
  EXPECT_EQ(flag_suggestion("completely-different"), "");
  EXPECT_EQ(key_suggestion("proxy-user"), "did you mean `proxy_user`?");
  EXPECT_EQ(key_suggestion("allow_cidr"), "did you mean `allow_cidrs`?");
  EXPECT_EQ(key_suggestion("xyzzy"), "");
}

TEST(Layer, ListsReplaceAndSwitchesOverride) {
  Layer profile, flags;
  const std::string dir = "/";
  ASSERT_TRUE(find_flag("allow-cidr")->parse(profile, "198.51.100.0/24", dir));
  ASSERT_TRUE(find_flag("allow-cidr")->parse(profile, "203.0.113.0/24", dir));
  ASSERT_TRUE(find_flag("offline")->parse_bool(profile, true));
  EXPECT_EQ(profile.values.allow_cidrs.size(), 2u) << "a list collects its items";
  ASSERT_TRUE(find_flag("allow-cidr")->parse(flags, "2001:db8::/32", dir));
  ASSERT_TRUE(find_key("offline")->parse_bool(flags, false));
  profile.overlay(flags);
  Config c = apply(profile);
  ASSERT_EQ(c.allow_cidrs.size(), 1u) << "the top layer's list replaces";
  EXPECT_EQ(c.allow_cidrs[0].str(), "2001:db8::/32");
  EXPECT_FALSE(c.offline) << "false set on top wins over true below";
}

// -P and --proxy-password-file are two rows of one field: the top layer's
// wins whichever row it used, and only -P is a secret.
TEST(Settings, TwoRowsOfOneFieldAreOneSetting) {
  const Setting* pw = find_flag("proxy-password");
  const Setting* file = find_flag("proxy-password-file");
  ASSERT_NE(pw, nullptr);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(pw->field, file->field);
  EXPECT_EQ(find_key("proxy_password_file"), file);
  EXPECT_TRUE(pw->secret);
  EXPECT_FALSE(file->secret) << "a path is no secret";
  EXPECT_EQ(pw->env, "CHILDFLOW_PROXY_PASSWORD");
  EXPECT_EQ(pw->env_needs, field_offset(&Config::proxy_user));
  for (const Setting& s : settings())
    if (s.secret) {
      EXPECT_FALSE(s.flag.empty() && s.env.empty()) << s.key;
    }
  const Setting* show = find_flag("show-secrets");
  ASSERT_NE(show, nullptr);
  EXPECT_TRUE(show->key.empty()) << "--show-secrets is a command-line switch only";

  char tmpl[] = "/tmp/cf-settings-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/pw";
  std::ofstream(path) << "from-file\n";
  Layer profile, flags;
  ASSERT_TRUE(file->parse(profile, "pw", tmpl));
  EXPECT_EQ(profile.values.proxy_password, "from-file");
  EXPECT_EQ(profile.values.proxy_password_file, path);
  ASSERT_TRUE(pw->parse(flags, "flag", "/"));
  Layer merged = profile;
  merged.overlay(flags);
  Config c = apply(merged);
  EXPECT_EQ(c.proxy_password, "flag");
  EXPECT_FALSE(c.proxy_password_file) << "-P on top forgets the file below";
  merged = flags;
  merged.overlay(profile);
  c = apply(merged);
  EXPECT_EQ(c.proxy_password, "from-file");
  EXPECT_EQ(c.proxy_password_file, path);
  std::filesystem::remove_all(tmpl);
}

TEST(Layer, ABadValueSetsNothing) {
  Layer l;
  Status st = find_flag("mtu")->parse(l, "12", "/");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("out of range"), std::string::npos) << st.error().message;
  EXPECT_FALSE(l.has(&Config::mtu));
  EXPECT_EQ(l, Layer{});
}

std::string read(const std::string& rel) {
  std::ifstream f(std::string(CHILDFLOW_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The reference pages cannot lose a flag or a key the table has.
TEST(Settings, TheDocsNameEveryFlagAndKey) {
  std::string cli = read("docs/cli.md"), profile = read("docs/profile.md");
  ASSERT_FALSE(cli.empty());
  ASSERT_FALSE(profile.empty());
  for (const Setting& s : settings()) {
    if (!s.flag.empty() && !s.hidden) {
      EXPECT_NE(cli.find(s.long_flag() + "`"), std::string::npos)
          << s.long_flag() << " is missing from docs/cli.md";
    }
    if (!s.key.empty()) {
      EXPECT_NE(profile.find("`" + std::string(s.key) + "`"), std::string::npos)
          << "key `" << s.key << "` is missing from docs/profile.md";
    }
    if (!s.env.empty()) {
      EXPECT_NE(cli.find("`" + std::string(s.env)), std::string::npos)
          << s.env << " is missing from docs/cli.md";
    }
  }
}

}  // namespace
}  // namespace cf::config
