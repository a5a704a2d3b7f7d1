import {
  create,
  createFileRegistry,
  type DescFile,
  type FileRegistry,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ConnectRouter } from '@connectrpc/connect';
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from '../../gen/grpc/reflection/v1/reflection_pb.js';
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as V1AlphaRequestSchema,
  ServerReflectionResponseSchema as V1AlphaResponseSchema,
} from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>['messageResponse'];

/**
 * gRPC server reflection, so grpcurl, buf curl, Postman and grpcui can call the service
 * without a copy of the .proto files. Both versions are served: v1 is the standard, but
 * many deployed tools still ask v1alpha first or only.
 */
export function createReflectionRoutes(
  files: readonly DescFile[],
): (router: ConnectRouter) => void {
  const reflection = createReflection(files);
  return (router) => {
    router.service(ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) yield reflection.answer(request);
      },
    });
    router.service(ServerReflectionV1Alpha, {
      // The v1alpha messages are wire-identical to v1 and differ only in their type
      // names, so one implementation serves both through a binary round trip.
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const v1 = fromBinary(
            ServerReflectionRequestSchema,
            toBinary(V1AlphaRequestSchema, request),
          );
          const answer = toBinary(ServerReflectionResponseSchema, reflection.answer(v1));
          yield fromBinary(V1AlphaResponseSchema, answer);
        }
      },
    });
  };
}

function createReflection(files: readonly DescFile[]) {
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: withDependencies(files).map((f) => f.proto) }),
  );
  // Only the given files' services are served here; a dependency's services are not.
  const given = new Set(files.map((f) => f.proto.name));
  const services = [...registry.files]
    .filter((f) => given.has(f.proto.name))
    .flatMap((f) => f.services.map((s) => ({ name: s.typeName })));
  const symbols = indexSymbols(registry.files);
  const serialized = new Map(
    [...registry.files].map((f) => [f.proto.name, toBinary(FileDescriptorProtoSchema, f.proto)]),
  );

  /**
   * The file first, then everything it imports, transitively: clients build their own
   * descriptor pool from the answer and fail on any missing import. The spec lets a
   * server skip files sent earlier on the stream; sending all every time keeps the
   * stream stateless, and the files are small.
   */
  function fileAnswer(file: DescFile): Answer {
    const chain = withDependencies([file]).reverse();
    return {
      case: 'fileDescriptorResponse',
      value: { fileDescriptorProto: chain.map((f) => serialized.get(f.proto.name)!) },
    };
  }

  function answerFor(request: ServerReflectionRequest['messageRequest']): Answer {
    switch (request.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: services } };
      case 'fileByFilename': {
        const file = registry.getFile(request.value);
        return file ? fileAnswer(file) : notFound(`file '${request.value}' not found`);
      }
      case 'fileContainingSymbol': {
        const file = symbols.get(request.value);
        return file ? fileAnswer(file) : notFound(`symbol '${request.value}' not found`);
      }
      case 'fileContainingExtension': {
        const { containingType, extensionNumber } = request.value;
        const extendee = registry.getMessage(containingType);
        const extension = extendee && registry.getExtensionFor(extendee, extensionNumber);
        return extension
          ? fileAnswer(extension.file)
          : notFound(`extension ${extensionNumber} of '${containingType}' not found`);
      }
      case 'allExtensionNumbersOfType': {
        if (!registry.getMessage(request.value)) {
          return notFound(`type '${request.value}' not found`);
        }
        return {
          case: 'allExtensionNumbersResponse',
          value: {
            baseTypeName: request.value,
            extensionNumber: extensionNumbers(registry, request.value),
          },
        };
      }
      default:
        return error(Code.InvalidArgument, 'the request asks for nothing');
    }
  }

  return {
    answer(request: ServerReflectionRequest): ServerReflectionResponse {
      return create(ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        messageResponse: answerFor(request.messageRequest),
      });
    },
  };
}

/**
 * The given files and everything they import, each after its imports: the order a
 * FileDescriptorSet needs to be read back into a registry.
 */
function withDependencies(files: readonly DescFile[]): DescFile[] {
  const ordered = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (ordered.has(file.proto.name)) return;
    for (const dependency of file.dependencies) visit(dependency);
    ordered.set(file.proto.name, file);
  };
  for (const file of files) visit(file);
  return [...ordered.values()];
}

/**
 * Every fully-qualified name a client may ask about, mapped to its file. The registry
 * knows types; clients also ask for methods (`pkg.Service.Method`, which grpcurl does
 * to describe a call), fields and enum values, as protoc's descriptor pool resolves them.
 */
function indexSymbols(files: Iterable<DescFile>): Map<string, DescFile> {
  const symbols = new Map<string, DescFile>();
  for (const file of files) {
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      switch (type.kind) {
        case 'service':
          for (const method of type.methods) symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case 'message':
          for (const member of [...type.fields, ...type.oneofs]) {
            symbols.set(`${type.typeName}.${member.name}`, file);
          }
          break;
        case 'enum': {
          // Enum values are scoped like C++ enumerators: siblings of the enum, not children.
          const scope = type.typeName.slice(0, type.typeName.length - type.name.length);
          for (const value of type.values) symbols.set(`${scope}${value.name}`, file);
          break;
        }
      }
    }
  }
  return symbols;
}

function extensionNumbers(registry: FileRegistry, typeName: string): number[] {
  const numbers: number[] = [];
  for (const type of registry) {
    if (type.kind === 'extension' && type.extendee.typeName === typeName) numbers.push(type.number);
  }
  return numbers.sort((a, b) => a - b);
}

/** Reflection reports a miss inside the stream, so the client can go on asking. */
function notFound(message: string): Answer {
  return error(Code.NotFound, message);
}

function error(code: Code, message: string): Answer {
  return { case: 'errorResponse', value: { errorCode: code, errorMessage: message } };
}
