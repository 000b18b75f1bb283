// Package onnxpb holds the Go types of the ONNX protobuf schema, generated
// by protoc-gen-go from onnx.proto (copied unchanged from the onnx 1.23.2
// wheel, onnx/onnx.proto; see README.md for how to regenerate). The
// generated file is committed so that building needs no protoc.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/houlsby/adapters/interop/onnx/onnxpb;onnxpb onnx.proto
