// A real Store on one engine in a scratch directory, with one blank volume,
// for in-process tests of the store and of the request pipeline.
// Header-only: a test that includes it links cowblk_store itself.

#ifndef COWBLK_TESTS_SUPPORT_STORE_FIXTURE_H_
#define COWBLK_TESTS_SUPPORT_STORE_FIXTURE_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {

class StoreFixture : public ::testing::Test {
 protected:
  // Starts the engine and the store, and creates blank volume "v" of
  // `size` bytes (handle_). Call from SetUp, with ASSERT_NO_FATAL_FAILURE.
  void StartWithVolume(uint64_t size) {
    auto engines = engine::EngineGroup::Start(1, engine::EngineOptions{});
    ASSERT_TRUE(engines.ok()) << engines.status();
    engines_ = *std::move(engines);
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    ASSERT_TRUE(store_->CreateVolume("v", "", size).ok());
    ASSERT_NO_FATAL_FAILURE(FindV());
  }
  // Closes the store (every volume flushed and closed) and opens it again
  // over the same directory.
  void ReopenStore() {
    handle_.reset();
    store_.reset();
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    ASSERT_NO_FATAL_FAILURE(FindV());
  }
  void TearDown() override {
    handle_.reset();
    store_.reset();
    engines_.reset();
  }

  TempDir dir_;
  std::unique_ptr<engine::EngineGroup> engines_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<store::VolumeHandle> handle_;  // of volume "v"

 private:
  void OpenStore() {
    store::StoreOptions options;
    options.data_dir = dir_.path();
    auto opened = store::Store::Open(options, engines_.get());
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }
  void FindV() {
    auto handle = store_->FindVolume("v");
    ASSERT_TRUE(handle.ok()) << handle.status();
    handle_ = *handle;
  }
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_STORE_FIXTURE_H_
