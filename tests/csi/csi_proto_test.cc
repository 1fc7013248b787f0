// Pins the csi.v1 names and numbers cowblk-csi relies on (proto/csi/v1/
// csi.proto) to the CSI specification's, through the generated descriptors:
// a renumbered, renamed or retyped field, enum value or method fails here
// before kubelet or a sidecar would misread it.

#include <string>
#include <vector>

#include "csi/v1/csi.grpc.pb.h"
#include "csi/v1/csi.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;

struct FieldPin {
  const char* message;  // full name
  const char* field;
  int number;
  FieldDescriptor::Type type;
  bool repeated;
};

constexpr auto kString = FieldDescriptor::TYPE_STRING;
constexpr auto kMessage = FieldDescriptor::TYPE_MESSAGE;
constexpr auto kInt64 = FieldDescriptor::TYPE_INT64;
constexpr auto kInt32 = FieldDescriptor::TYPE_INT32;
constexpr auto kBool = FieldDescriptor::TYPE_BOOL;
constexpr auto kEnum = FieldDescriptor::TYPE_ENUM;

// From the spec (spec.md, csi.proto of container-storage-interface/spec
// v1.x). Maps are repeated messages on the wire.
const FieldPin kFields[] = {
    {"csi.v1.GetPluginInfoResponse", "name", 1, kString, false},
    {"csi.v1.GetPluginInfoResponse", "vendor_version", 2, kString, false},
    {"csi.v1.GetPluginInfoResponse", "manifest", 3, kMessage, true},
    {"csi.v1.GetPluginCapabilitiesResponse", "capabilities", 1, kMessage, true},
    {"csi.v1.PluginCapability", "service", 1, kMessage, false},
    {"csi.v1.PluginCapability", "volume_expansion", 2, kMessage, false},
    {"csi.v1.PluginCapability.Service", "type", 1, kEnum, false},
    {"csi.v1.PluginCapability.VolumeExpansion", "type", 1, kEnum, false},
    {"csi.v1.ProbeResponse", "ready", 1, kMessage, false},
    {"csi.v1.VolumeCapability", "block", 1, kMessage, false},
    {"csi.v1.VolumeCapability", "mount", 2, kMessage, false},
    {"csi.v1.VolumeCapability", "access_mode", 3, kMessage, false},
    {"csi.v1.VolumeCapability.MountVolume", "fs_type", 1, kString, false},
    {"csi.v1.VolumeCapability.MountVolume", "mount_flags", 2, kString, true},
    {"csi.v1.VolumeCapability.AccessMode", "mode", 1, kEnum, false},
    {"csi.v1.CapacityRange", "required_bytes", 1, kInt64, false},
    {"csi.v1.CapacityRange", "limit_bytes", 2, kInt64, false},
    {"csi.v1.VolumeContentSource", "snapshot", 1, kMessage, false},
    {"csi.v1.VolumeContentSource", "volume", 2, kMessage, false},
    {"csi.v1.VolumeContentSource.SnapshotSource", "snapshot_id", 1, kString, false},
    {"csi.v1.VolumeContentSource.VolumeSource", "volume_id", 1, kString, false},
    {"csi.v1.Volume", "capacity_bytes", 1, kInt64, false},
    {"csi.v1.Volume", "volume_id", 2, kString, false},
    {"csi.v1.Volume", "volume_context", 3, kMessage, true},
    {"csi.v1.Volume", "content_source", 4, kMessage, false},
    {"csi.v1.Volume", "accessible_topology", 5, kMessage, true},
    {"csi.v1.TopologyRequirement", "requisite", 1, kMessage, true},
    {"csi.v1.TopologyRequirement", "preferred", 2, kMessage, true},
    {"csi.v1.Topology", "segments", 1, kMessage, true},
    {"csi.v1.Snapshot", "size_bytes", 1, kInt64, false},
    {"csi.v1.Snapshot", "snapshot_id", 2, kString, false},
    {"csi.v1.Snapshot", "source_volume_id", 3, kString, false},
    {"csi.v1.Snapshot", "creation_time", 4, kMessage, false},
    {"csi.v1.Snapshot", "ready_to_use", 5, kBool, false},
    {"csi.v1.VolumeCondition", "abnormal", 1, kBool, false},
    {"csi.v1.VolumeCondition", "message", 2, kString, false},
    {"csi.v1.CreateVolumeRequest", "name", 1, kString, false},
    {"csi.v1.CreateVolumeRequest", "capacity_range", 2, kMessage, false},
    {"csi.v1.CreateVolumeRequest", "volume_capabilities", 3, kMessage, true},
    {"csi.v1.CreateVolumeRequest", "parameters", 4, kMessage, true},
    {"csi.v1.CreateVolumeRequest", "secrets", 5, kMessage, true},
    {"csi.v1.CreateVolumeRequest", "volume_content_source", 6, kMessage, false},
    {"csi.v1.CreateVolumeRequest", "accessibility_requirements", 7, kMessage, false},
    {"csi.v1.CreateVolumeResponse", "volume", 1, kMessage, false},
    {"csi.v1.DeleteVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.DeleteVolumeRequest", "secrets", 2, kMessage, true},
    {"csi.v1.ControllerPublishVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.ControllerPublishVolumeRequest", "node_id", 2, kString, false},
    {"csi.v1.ControllerPublishVolumeRequest", "volume_capability", 3, kMessage, false},
    {"csi.v1.ControllerPublishVolumeRequest", "readonly", 4, kBool, false},
    {"csi.v1.ControllerPublishVolumeRequest", "secrets", 5, kMessage, true},
    {"csi.v1.ControllerPublishVolumeRequest", "volume_context", 6, kMessage, true},
    {"csi.v1.ControllerPublishVolumeResponse", "publish_context", 1, kMessage, true},
    {"csi.v1.ControllerUnpublishVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.ControllerUnpublishVolumeRequest", "node_id", 2, kString, false},
    {"csi.v1.ControllerUnpublishVolumeRequest", "secrets", 3, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesRequest", "volume_id", 1, kString, false},
    {"csi.v1.ValidateVolumeCapabilitiesRequest", "volume_context", 2, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesRequest", "volume_capabilities", 3, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesRequest", "parameters", 4, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesRequest", "secrets", 5, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesResponse", "confirmed", 1, kMessage, false},
    {"csi.v1.ValidateVolumeCapabilitiesResponse", "message", 2, kString, false},
    {"csi.v1.ValidateVolumeCapabilitiesResponse.Confirmed", "volume_context", 1, kMessage, true},
    {"csi.v1.ValidateVolumeCapabilitiesResponse.Confirmed", "volume_capabilities", 2, kMessage,
     true},
    {"csi.v1.ValidateVolumeCapabilitiesResponse.Confirmed", "parameters", 3, kMessage, true},
    {"csi.v1.ListVolumesRequest", "max_entries", 1, kInt32, false},
    {"csi.v1.ListVolumesRequest", "starting_token", 2, kString, false},
    {"csi.v1.ListVolumesResponse", "entries", 1, kMessage, true},
    {"csi.v1.ListVolumesResponse", "next_token", 2, kString, false},
    {"csi.v1.ListVolumesResponse.Entry", "volume", 1, kMessage, false},
    {"csi.v1.ListVolumesResponse.Entry", "status", 2, kMessage, false},
    {"csi.v1.ListVolumesResponse.VolumeStatus", "published_node_ids", 1, kString, true},
    {"csi.v1.ListVolumesResponse.VolumeStatus", "volume_condition", 2, kMessage, false},
    {"csi.v1.GetCapacityRequest", "volume_capabilities", 1, kMessage, true},
    {"csi.v1.GetCapacityRequest", "parameters", 2, kMessage, true},
    {"csi.v1.GetCapacityRequest", "accessible_topology", 3, kMessage, false},
    {"csi.v1.GetCapacityResponse", "available_capacity", 1, kInt64, false},
    {"csi.v1.GetCapacityResponse", "maximum_volume_size", 2, kMessage, false},
    {"csi.v1.GetCapacityResponse", "minimum_volume_size", 3, kMessage, false},
    {"csi.v1.ControllerGetCapabilitiesResponse", "capabilities", 1, kMessage, true},
    {"csi.v1.ControllerServiceCapability", "rpc", 1, kMessage, false},
    {"csi.v1.ControllerServiceCapability.RPC", "type", 1, kEnum, false},
    {"csi.v1.CreateSnapshotRequest", "source_volume_id", 1, kString, false},
    {"csi.v1.CreateSnapshotRequest", "name", 2, kString, false},
    {"csi.v1.CreateSnapshotRequest", "secrets", 3, kMessage, true},
    {"csi.v1.CreateSnapshotRequest", "parameters", 4, kMessage, true},
    {"csi.v1.CreateSnapshotResponse", "snapshot", 1, kMessage, false},
    {"csi.v1.DeleteSnapshotRequest", "snapshot_id", 1, kString, false},
    {"csi.v1.DeleteSnapshotRequest", "secrets", 2, kMessage, true},
    {"csi.v1.ListSnapshotsRequest", "max_entries", 1, kInt32, false},
    {"csi.v1.ListSnapshotsRequest", "starting_token", 2, kString, false},
    {"csi.v1.ListSnapshotsRequest", "source_volume_id", 3, kString, false},
    {"csi.v1.ListSnapshotsRequest", "snapshot_id", 4, kString, false},
    {"csi.v1.ListSnapshotsRequest", "secrets", 5, kMessage, true},
    {"csi.v1.ListSnapshotsResponse", "entries", 1, kMessage, true},
    {"csi.v1.ListSnapshotsResponse", "next_token", 2, kString, false},
    {"csi.v1.ListSnapshotsResponse.Entry", "snapshot", 1, kMessage, false},
    {"csi.v1.ControllerExpandVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.ControllerExpandVolumeRequest", "capacity_range", 2, kMessage, false},
    {"csi.v1.ControllerExpandVolumeRequest", "secrets", 3, kMessage, true},
    {"csi.v1.ControllerExpandVolumeRequest", "volume_capability", 4, kMessage, false},
    {"csi.v1.ControllerExpandVolumeResponse", "capacity_bytes", 1, kInt64, false},
    {"csi.v1.ControllerExpandVolumeResponse", "node_expansion_required", 2, kBool, false},
    {"csi.v1.NodeStageVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodeStageVolumeRequest", "publish_context", 2, kMessage, true},
    {"csi.v1.NodeStageVolumeRequest", "staging_target_path", 3, kString, false},
    {"csi.v1.NodeStageVolumeRequest", "volume_capability", 4, kMessage, false},
    {"csi.v1.NodeStageVolumeRequest", "secrets", 5, kMessage, true},
    {"csi.v1.NodeStageVolumeRequest", "volume_context", 6, kMessage, true},
    {"csi.v1.NodeUnstageVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodeUnstageVolumeRequest", "staging_target_path", 2, kString, false},
    {"csi.v1.NodePublishVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodePublishVolumeRequest", "publish_context", 2, kMessage, true},
    {"csi.v1.NodePublishVolumeRequest", "staging_target_path", 3, kString, false},
    {"csi.v1.NodePublishVolumeRequest", "target_path", 4, kString, false},
    {"csi.v1.NodePublishVolumeRequest", "volume_capability", 5, kMessage, false},
    {"csi.v1.NodePublishVolumeRequest", "readonly", 6, kBool, false},
    {"csi.v1.NodePublishVolumeRequest", "secrets", 7, kMessage, true},
    {"csi.v1.NodePublishVolumeRequest", "volume_context", 8, kMessage, true},
    {"csi.v1.NodeUnpublishVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodeUnpublishVolumeRequest", "target_path", 2, kString, false},
    {"csi.v1.NodeGetVolumeStatsRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodeGetVolumeStatsRequest", "volume_path", 2, kString, false},
    {"csi.v1.NodeGetVolumeStatsRequest", "staging_target_path", 3, kString, false},
    {"csi.v1.NodeGetVolumeStatsResponse", "usage", 1, kMessage, true},
    {"csi.v1.NodeGetVolumeStatsResponse", "volume_condition", 2, kMessage, false},
    {"csi.v1.VolumeUsage", "available", 1, kInt64, false},
    {"csi.v1.VolumeUsage", "total", 2, kInt64, false},
    {"csi.v1.VolumeUsage", "used", 3, kInt64, false},
    {"csi.v1.VolumeUsage", "unit", 4, kEnum, false},
    {"csi.v1.NodeExpandVolumeRequest", "volume_id", 1, kString, false},
    {"csi.v1.NodeExpandVolumeRequest", "volume_path", 2, kString, false},
    {"csi.v1.NodeExpandVolumeRequest", "capacity_range", 3, kMessage, false},
    {"csi.v1.NodeExpandVolumeRequest", "staging_target_path", 4, kString, false},
    {"csi.v1.NodeExpandVolumeRequest", "volume_capability", 5, kMessage, false},
    {"csi.v1.NodeExpandVolumeRequest", "secrets", 6, kMessage, true},
    {"csi.v1.NodeExpandVolumeResponse", "capacity_bytes", 1, kInt64, false},
    {"csi.v1.NodeGetCapabilitiesResponse", "capabilities", 1, kMessage, true},
    {"csi.v1.NodeServiceCapability", "rpc", 1, kMessage, false},
    {"csi.v1.NodeServiceCapability.RPC", "type", 1, kEnum, false},
    {"csi.v1.NodeGetInfoResponse", "node_id", 1, kString, false},
    {"csi.v1.NodeGetInfoResponse", "max_volumes_per_node", 2, kInt64, false},
    {"csi.v1.NodeGetInfoResponse", "accessible_topology", 3, kMessage, false},
};

struct EnumPin {
  const char* enum_type;
  const char* value;
  int number;
};

const EnumPin kEnums[] = {
    {"csi.v1.PluginCapability.Service.Type", "UNKNOWN", 0},
    {"csi.v1.PluginCapability.Service.Type", "CONTROLLER_SERVICE", 1},
    {"csi.v1.PluginCapability.Service.Type", "VOLUME_ACCESSIBILITY_CONSTRAINTS", 2},
    {"csi.v1.PluginCapability.VolumeExpansion.Type", "ONLINE", 1},
    {"csi.v1.PluginCapability.VolumeExpansion.Type", "OFFLINE", 2},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "UNKNOWN", 0},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "SINGLE_NODE_WRITER", 1},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "SINGLE_NODE_READER_ONLY", 2},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "MULTI_NODE_READER_ONLY", 3},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "MULTI_NODE_SINGLE_WRITER", 4},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "MULTI_NODE_MULTI_WRITER", 5},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "SINGLE_NODE_SINGLE_WRITER", 6},
    {"csi.v1.VolumeCapability.AccessMode.Mode", "SINGLE_NODE_MULTI_WRITER", 7},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "CREATE_DELETE_VOLUME", 1},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "PUBLISH_UNPUBLISH_VOLUME", 2},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "LIST_VOLUMES", 3},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "GET_CAPACITY", 4},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "CREATE_DELETE_SNAPSHOT", 5},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "LIST_SNAPSHOTS", 6},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "CLONE_VOLUME", 7},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "PUBLISH_READONLY", 8},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "EXPAND_VOLUME", 9},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "LIST_VOLUMES_PUBLISHED_NODES", 10},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "VOLUME_CONDITION", 11},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "GET_VOLUME", 12},
    {"csi.v1.ControllerServiceCapability.RPC.Type", "SINGLE_NODE_MULTI_WRITER", 13},
    {"csi.v1.NodeServiceCapability.RPC.Type", "STAGE_UNSTAGE_VOLUME", 1},
    {"csi.v1.NodeServiceCapability.RPC.Type", "GET_VOLUME_STATS", 2},
    {"csi.v1.NodeServiceCapability.RPC.Type", "EXPAND_VOLUME", 3},
    {"csi.v1.NodeServiceCapability.RPC.Type", "VOLUME_CONDITION", 4},
    {"csi.v1.NodeServiceCapability.RPC.Type", "SINGLE_NODE_MULTI_WRITER", 5},
    {"csi.v1.VolumeUsage.Unit", "BYTES", 1},
    {"csi.v1.VolumeUsage.Unit", "INODES", 2},
};

// The paths kubelet and the sidecars call: "/csi.v1.<Service>/<Method>".
const char* const kMethods[] = {
    "/csi.v1.Identity/GetPluginInfo",
    "/csi.v1.Identity/GetPluginCapabilities",
    "/csi.v1.Identity/Probe",
    "/csi.v1.Controller/CreateVolume",
    "/csi.v1.Controller/DeleteVolume",
    "/csi.v1.Controller/ControllerPublishVolume",
    "/csi.v1.Controller/ControllerUnpublishVolume",
    "/csi.v1.Controller/ValidateVolumeCapabilities",
    "/csi.v1.Controller/ListVolumes",
    "/csi.v1.Controller/GetCapacity",
    "/csi.v1.Controller/ControllerGetCapabilities",
    "/csi.v1.Controller/CreateSnapshot",
    "/csi.v1.Controller/DeleteSnapshot",
    "/csi.v1.Controller/ListSnapshots",
    "/csi.v1.Controller/ControllerExpandVolume",
    "/csi.v1.Node/NodeStageVolume",
    "/csi.v1.Node/NodeUnstageVolume",
    "/csi.v1.Node/NodePublishVolume",
    "/csi.v1.Node/NodeUnpublishVolume",
    "/csi.v1.Node/NodeGetVolumeStats",
    "/csi.v1.Node/NodeExpandVolume",
    "/csi.v1.Node/NodeGetCapabilities",
    "/csi.v1.Node/NodeGetInfo",
};

const DescriptorPool* Pool() {
  // Links the generated file in and registers it with the generated pool.
  csi::v1::CreateVolumeRequest::descriptor();
  return DescriptorPool::generated_pool();
}

TEST(CsiProtoTest, EveryFieldHasTheSpecsNumberTypeAndLabel) {
  for (const FieldPin& pin : kFields) {
    SCOPED_TRACE(std::string(pin.message) + "." + pin.field);
    const auto* message = Pool()->FindMessageTypeByName(pin.message);
    ASSERT_NE(message, nullptr);
    const FieldDescriptor* field = message->FindFieldByName(pin.field);
    ASSERT_NE(field, nullptr);
    EXPECT_EQ(field->number(), pin.number);
    EXPECT_EQ(field->type(), pin.type);
    EXPECT_EQ(field->is_repeated(), pin.repeated);
  }
}

TEST(CsiProtoTest, EveryEnumValueHasTheSpecsNumber) {
  for (const EnumPin& pin : kEnums) {
    SCOPED_TRACE(std::string(pin.enum_type) + "." + pin.value);
    const auto* type = Pool()->FindEnumTypeByName(pin.enum_type);
    ASSERT_NE(type, nullptr);
    const auto* value = type->FindValueByName(pin.value);
    ASSERT_NE(value, nullptr);
    EXPECT_EQ(value->number(), pin.number);
  }
}

TEST(CsiProtoTest, MapFieldsAreStringToString) {
  // Maps are wire-compatible only with the same key and value types.
  for (const FieldPin& pin : kFields) {
    const auto* field = Pool()->FindMessageTypeByName(pin.message)->FindFieldByName(pin.field);
    if (field == nullptr || !field->is_map()) continue;
    SCOPED_TRACE(std::string(pin.message) + "." + pin.field);
    EXPECT_EQ(field->message_type()->map_key()->type(), kString);
    EXPECT_EQ(field->message_type()->map_value()->type(), kString);
  }
}

TEST(CsiProtoTest, EveryMethodHasTheSpecsPathAndMessages) {
  for (const char* path : kMethods) {
    SCOPED_TRACE(path);
    std::string p(path + 1);
    const size_t slash = p.find('/');
    const auto* service = Pool()->FindServiceByName(p.substr(0, slash));
    ASSERT_NE(service, nullptr);
    const auto* method = service->FindMethodByName(p.substr(slash + 1));
    ASSERT_NE(method, nullptr);
    EXPECT_FALSE(method->client_streaming());
    EXPECT_FALSE(method->server_streaming());
    // The spec names every message <Method>Request / <Method>Response.
    EXPECT_EQ(method->input_type()->full_name(), "csi.v1." + method->name() + "Request");
    EXPECT_EQ(method->output_type()->full_name(), "csi.v1." + method->name() + "Response");
  }
}

TEST(CsiProtoTest, WellKnownWrappersAreTheSpecs) {
  EXPECT_EQ(Pool()->FindMessageTypeByName("csi.v1.ProbeResponse")
                ->FindFieldByName("ready")->message_type()->full_name(),
            "google.protobuf.BoolValue");
  EXPECT_EQ(Pool()->FindMessageTypeByName("csi.v1.GetCapacityResponse")
                ->FindFieldByName("maximum_volume_size")->message_type()->full_name(),
            "google.protobuf.Int64Value");
  EXPECT_EQ(Pool()->FindMessageTypeByName("csi.v1.Snapshot")
                ->FindFieldByName("creation_time")->message_type()->full_name(),
            "google.protobuf.Timestamp");
}

// A request as a peer built from the spec's numbers encodes it, by hand:
// CreateVolumeRequest{name: "pvc-1" (1), capacity_range (2) {required_bytes
// (1): 4096}, accessibility_requirements (7) {preferred (2) {segments (1)
// {"k": "v"}}}}.
TEST(CsiProtoTest, ParsesBytesEncodedFromTheSpecsNumbers) {
  const std::string wire = std::string("\x0a\x05pvc-1", 7) +      // 1: name
                           std::string("\x12\x03\x08\x80\x20", 5) +  // 2: {1: 4096}
                           std::string("\x3a\x0a\x12\x08\x0a\x06\x0a\x01k\x12\x01v", 12);
  csi::v1::CreateVolumeRequest req;
  ASSERT_TRUE(req.ParseFromString(wire));
  EXPECT_EQ(req.name(), "pvc-1");
  EXPECT_EQ(req.capacity_range().required_bytes(), 4096);
  ASSERT_EQ(req.accessibility_requirements().preferred_size(), 1);
  EXPECT_EQ(req.accessibility_requirements().preferred(0).segments().at("k"), "v");
  EXPECT_EQ(req.SerializeAsString(), wire);
}

}  // namespace
