# libFuzzer targets (converters/fuzz/): included by CMakeLists.txt with -DTFCOMPRESS_FUZZ=ON, which
# needs clang (CMAKE_CXX_COMPILER=clang++). The op library's sources are built once more with
# libFuzzer coverage, AddressSanitizer and UndefinedBehaviorSanitizer into a static library that
# every target links; the normal library is not affected. Driven by converters/fuzz/run.py
# (`make fuzz`).
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TFCOMPRESS_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
endif()
set(TFC_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
    -Wno-unknown-warning-option)
set(TFC_FUZZ_LINK_FLAGS -fsanitize=fuzzer,address,undefined)

add_library(tfcompress_ops_fuzz STATIC ${SOURCES})
target_include_directories(tfcompress_ops_fuzz PUBLIC src)
target_include_directories(tfcompress_ops_fuzz SYSTEM PUBLIC ${TFLITE_INCLUDE_DIR} ${FLATBUFFERS_INCLUDE_DIR})
target_compile_definitions(tfcompress_ops_fuzz PUBLIC ${DEFINES})
target_compile_options(tfcompress_ops_fuzz PRIVATE ${TFC_FUZZ_FLAGS})
target_link_libraries(tfcompress_ops_fuzz PUBLIC Threads::Threads)

# name -> source [op]: fuzz_op.cc runs the op named after it.
set(TFC_FUZZ_TARGETS
  "fuzz_options:fuzz_options.cc:"
  "fuzz_huffman:fuzz_huffman.cc:"
  "fuzz_binary_conv2d:fuzz_op.cc:TfcBinaryConv2D"
  "fuzz_binary_dense:fuzz_op.cc:TfcBinaryDense"
  "fuzz_pq_decode:fuzz_op.cc:TfcPQDecode"
  "fuzz_pq_dense:fuzz_op.cc:TfcPQDense"
  "fuzz_sparse_decode:fuzz_op.cc:TfcSparseDecode")
foreach(spec ${TFC_FUZZ_TARGETS})
  string(REPLACE ":" ";" parts "${spec}")
  list(GET parts 0 name)
  list(GET parts 1 source)
  add_executable(${name} fuzz/${source})
  target_link_libraries(${name} PRIVATE tfcompress_ops_fuzz)
  target_compile_options(${name} PRIVATE ${TFC_FUZZ_FLAGS})
  target_link_options(${name} PRIVATE ${TFC_FUZZ_LINK_FLAGS})
  list(GET parts 2 op)
  if(op)
    target_compile_definitions(${name} PRIVATE TFC_FUZZ_OP="${op}")
  endif()
endforeach()
