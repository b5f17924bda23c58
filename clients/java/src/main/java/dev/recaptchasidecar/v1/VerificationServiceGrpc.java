package dev.recaptchasidecar.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class VerificationServiceGrpc {

  private VerificationServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "recaptcha.sidecar.v1.VerificationService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AssessRequest,
      dev.recaptchasidecar.v1.AssessResponse> getAssessMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Assess",
      requestType = dev.recaptchasidecar.v1.AssessRequest.class,
      responseType = dev.recaptchasidecar.v1.AssessResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AssessRequest,
      dev.recaptchasidecar.v1.AssessResponse> getAssessMethod() {
    io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AssessRequest, dev.recaptchasidecar.v1.AssessResponse> getAssessMethod;
    if ((getAssessMethod = VerificationServiceGrpc.getAssessMethod) == null) {
      synchronized (VerificationServiceGrpc.class) {
        if ((getAssessMethod = VerificationServiceGrpc.getAssessMethod) == null) {
          VerificationServiceGrpc.getAssessMethod = getAssessMethod =
              io.grpc.MethodDescriptor.<dev.recaptchasidecar.v1.AssessRequest, dev.recaptchasidecar.v1.AssessResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Assess"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.AssessRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.AssessResponse.getDefaultInstance()))
              .setSchemaDescriptor(new VerificationServiceMethodDescriptorSupplier("Assess"))
              .build();
        }
      }
    }
    return getAssessMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AnnotateRequest,
      dev.recaptchasidecar.v1.AnnotateResponse> getAnnotateMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Annotate",
      requestType = dev.recaptchasidecar.v1.AnnotateRequest.class,
      responseType = dev.recaptchasidecar.v1.AnnotateResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AnnotateRequest,
      dev.recaptchasidecar.v1.AnnotateResponse> getAnnotateMethod() {
    io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.AnnotateRequest, dev.recaptchasidecar.v1.AnnotateResponse> getAnnotateMethod;
    if ((getAnnotateMethod = VerificationServiceGrpc.getAnnotateMethod) == null) {
      synchronized (VerificationServiceGrpc.class) {
        if ((getAnnotateMethod = VerificationServiceGrpc.getAnnotateMethod) == null) {
          VerificationServiceGrpc.getAnnotateMethod = getAnnotateMethod =
              io.grpc.MethodDescriptor.<dev.recaptchasidecar.v1.AnnotateRequest, dev.recaptchasidecar.v1.AnnotateResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Annotate"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.AnnotateRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.AnnotateResponse.getDefaultInstance()))
              .setSchemaDescriptor(new VerificationServiceMethodDescriptorSupplier("Annotate"))
              .build();
        }
      }
    }
    return getAnnotateMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.SearchRelatedAccountsRequest,
      dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> getSearchRelatedAccountsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "SearchRelatedAccounts",
      requestType = dev.recaptchasidecar.v1.SearchRelatedAccountsRequest.class,
      responseType = dev.recaptchasidecar.v1.SearchRelatedAccountsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.SearchRelatedAccountsRequest,
      dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> getSearchRelatedAccountsMethod() {
    io.grpc.MethodDescriptor<dev.recaptchasidecar.v1.SearchRelatedAccountsRequest, dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> getSearchRelatedAccountsMethod;
    if ((getSearchRelatedAccountsMethod = VerificationServiceGrpc.getSearchRelatedAccountsMethod) == null) {
      synchronized (VerificationServiceGrpc.class) {
        if ((getSearchRelatedAccountsMethod = VerificationServiceGrpc.getSearchRelatedAccountsMethod) == null) {
          VerificationServiceGrpc.getSearchRelatedAccountsMethod = getSearchRelatedAccountsMethod =
              io.grpc.MethodDescriptor.<dev.recaptchasidecar.v1.SearchRelatedAccountsRequest, dev.recaptchasidecar.v1.SearchRelatedAccountsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "SearchRelatedAccounts"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.SearchRelatedAccountsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.recaptchasidecar.v1.SearchRelatedAccountsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new VerificationServiceMethodDescriptorSupplier("SearchRelatedAccounts"))
              .build();
        }
      }
    }
    return getSearchRelatedAccountsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static VerificationServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<VerificationServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<VerificationServiceStub>() {
        @java.lang.Override
        public VerificationServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new VerificationServiceStub(channel, callOptions);
        }
      };
    return VerificationServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static VerificationServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<VerificationServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<VerificationServiceBlockingV2Stub>() {
        @java.lang.Override
        public VerificationServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new VerificationServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return VerificationServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static VerificationServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<VerificationServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<VerificationServiceBlockingStub>() {
        @java.lang.Override
        public VerificationServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new VerificationServiceBlockingStub(channel, callOptions);
        }
      };
    return VerificationServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static VerificationServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<VerificationServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<VerificationServiceFutureStub>() {
        @java.lang.Override
        public VerificationServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new VerificationServiceFutureStub(channel, callOptions);
        }
      };
    return VerificationServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Assess verifies one token (reCAPTCHA Enterprise CreateAssessment) and returns a decision.
     * A token is accepted at most once: a repeat is DUPLICATE without an upstream call, unless it
     * carries the same non-empty idempotency_key, in which case the original answer is returned.
     * </pre>
     */
    default void assess(dev.recaptchasidecar.v1.AssessRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AssessResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getAssessMethod(), responseObserver);
    }

    /**
     * <pre>
     * Annotate reports what happened after an assessment (reCAPTCHA Enterprise
     * AnnotateAssessment). By default the annotation is stored durably and acknowledged at once;
     * it is delivered upstream in batches.
     * </pre>
     */
    default void annotate(dev.recaptchasidecar.v1.AnnotateRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AnnotateResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getAnnotateMethod(), responseObserver);
    }

    /**
     * <pre>
     * SearchRelatedAccounts lists the accounts reCAPTCHA account defender relates to one account
     * (SearchRelatedAccountGroupMemberships): accounts with similar behaviour, by related-account
     * group, a page at a time. The account id is protected on its way up exactly as Assess
     * protects it; the ids that come back are decrypted under deterministic encryption, and come
     * back as Google holds them (HMAC-SHA256 hashes, which the app maps itself) otherwise.
     * Upstream failures are gRPC statuses, as for a synchronous Annotate.
     * </pre>
     */
    default void searchRelatedAccounts(dev.recaptchasidecar.v1.SearchRelatedAccountsRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSearchRelatedAccountsMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service VerificationService.
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public static abstract class VerificationServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return VerificationServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service VerificationService.
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public static final class VerificationServiceStub
      extends io.grpc.stub.AbstractAsyncStub<VerificationServiceStub> {
    private VerificationServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected VerificationServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new VerificationServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Assess verifies one token (reCAPTCHA Enterprise CreateAssessment) and returns a decision.
     * A token is accepted at most once: a repeat is DUPLICATE without an upstream call, unless it
     * carries the same non-empty idempotency_key, in which case the original answer is returned.
     * </pre>
     */
    public void assess(dev.recaptchasidecar.v1.AssessRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AssessResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getAssessMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Annotate reports what happened after an assessment (reCAPTCHA Enterprise
     * AnnotateAssessment). By default the annotation is stored durably and acknowledged at once;
     * it is delivered upstream in batches.
     * </pre>
     */
    public void annotate(dev.recaptchasidecar.v1.AnnotateRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AnnotateResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getAnnotateMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * SearchRelatedAccounts lists the accounts reCAPTCHA account defender relates to one account
     * (SearchRelatedAccountGroupMemberships): accounts with similar behaviour, by related-account
     * group, a page at a time. The account id is protected on its way up exactly as Assess
     * protects it; the ids that come back are decrypted under deterministic encryption, and come
     * back as Google holds them (HMAC-SHA256 hashes, which the app maps itself) otherwise.
     * Upstream failures are gRPC statuses, as for a synchronous Annotate.
     * </pre>
     */
    public void searchRelatedAccounts(dev.recaptchasidecar.v1.SearchRelatedAccountsRequest request,
        io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSearchRelatedAccountsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service VerificationService.
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public static final class VerificationServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<VerificationServiceBlockingV2Stub> {
    private VerificationServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected VerificationServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new VerificationServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Assess verifies one token (reCAPTCHA Enterprise CreateAssessment) and returns a decision.
     * A token is accepted at most once: a repeat is DUPLICATE without an upstream call, unless it
     * carries the same non-empty idempotency_key, in which case the original answer is returned.
     * </pre>
     */
    public dev.recaptchasidecar.v1.AssessResponse assess(dev.recaptchasidecar.v1.AssessRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getAssessMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Annotate reports what happened after an assessment (reCAPTCHA Enterprise
     * AnnotateAssessment). By default the annotation is stored durably and acknowledged at once;
     * it is delivered upstream in batches.
     * </pre>
     */
    public dev.recaptchasidecar.v1.AnnotateResponse annotate(dev.recaptchasidecar.v1.AnnotateRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getAnnotateMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * SearchRelatedAccounts lists the accounts reCAPTCHA account defender relates to one account
     * (SearchRelatedAccountGroupMemberships): accounts with similar behaviour, by related-account
     * group, a page at a time. The account id is protected on its way up exactly as Assess
     * protects it; the ids that come back are decrypted under deterministic encryption, and come
     * back as Google holds them (HMAC-SHA256 hashes, which the app maps itself) otherwise.
     * Upstream failures are gRPC statuses, as for a synchronous Annotate.
     * </pre>
     */
    public dev.recaptchasidecar.v1.SearchRelatedAccountsResponse searchRelatedAccounts(dev.recaptchasidecar.v1.SearchRelatedAccountsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getSearchRelatedAccountsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service VerificationService.
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public static final class VerificationServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<VerificationServiceBlockingStub> {
    private VerificationServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected VerificationServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new VerificationServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Assess verifies one token (reCAPTCHA Enterprise CreateAssessment) and returns a decision.
     * A token is accepted at most once: a repeat is DUPLICATE without an upstream call, unless it
     * carries the same non-empty idempotency_key, in which case the original answer is returned.
     * </pre>
     */
    public dev.recaptchasidecar.v1.AssessResponse assess(dev.recaptchasidecar.v1.AssessRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getAssessMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Annotate reports what happened after an assessment (reCAPTCHA Enterprise
     * AnnotateAssessment). By default the annotation is stored durably and acknowledged at once;
     * it is delivered upstream in batches.
     * </pre>
     */
    public dev.recaptchasidecar.v1.AnnotateResponse annotate(dev.recaptchasidecar.v1.AnnotateRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getAnnotateMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * SearchRelatedAccounts lists the accounts reCAPTCHA account defender relates to one account
     * (SearchRelatedAccountGroupMemberships): accounts with similar behaviour, by related-account
     * group, a page at a time. The account id is protected on its way up exactly as Assess
     * protects it; the ids that come back are decrypted under deterministic encryption, and come
     * back as Google holds them (HMAC-SHA256 hashes, which the app maps itself) otherwise.
     * Upstream failures are gRPC statuses, as for a synchronous Annotate.
     * </pre>
     */
    public dev.recaptchasidecar.v1.SearchRelatedAccountsResponse searchRelatedAccounts(dev.recaptchasidecar.v1.SearchRelatedAccountsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSearchRelatedAccountsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service VerificationService.
   * <pre>
   * VerificationService verifies reCAPTCHA Enterprise tokens and forwards annotations.
   * </pre>
   */
  public static final class VerificationServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<VerificationServiceFutureStub> {
    private VerificationServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected VerificationServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new VerificationServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Assess verifies one token (reCAPTCHA Enterprise CreateAssessment) and returns a decision.
     * A token is accepted at most once: a repeat is DUPLICATE without an upstream call, unless it
     * carries the same non-empty idempotency_key, in which case the original answer is returned.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.recaptchasidecar.v1.AssessResponse> assess(
        dev.recaptchasidecar.v1.AssessRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getAssessMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Annotate reports what happened after an assessment (reCAPTCHA Enterprise
     * AnnotateAssessment). By default the annotation is stored durably and acknowledged at once;
     * it is delivered upstream in batches.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.recaptchasidecar.v1.AnnotateResponse> annotate(
        dev.recaptchasidecar.v1.AnnotateRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getAnnotateMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * SearchRelatedAccounts lists the accounts reCAPTCHA account defender relates to one account
     * (SearchRelatedAccountGroupMemberships): accounts with similar behaviour, by related-account
     * group, a page at a time. The account id is protected on its way up exactly as Assess
     * protects it; the ids that come back are decrypted under deterministic encryption, and come
     * back as Google holds them (HMAC-SHA256 hashes, which the app maps itself) otherwise.
     * Upstream failures are gRPC statuses, as for a synchronous Annotate.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.recaptchasidecar.v1.SearchRelatedAccountsResponse> searchRelatedAccounts(
        dev.recaptchasidecar.v1.SearchRelatedAccountsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSearchRelatedAccountsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_ASSESS = 0;
  private static final int METHODID_ANNOTATE = 1;
  private static final int METHODID_SEARCH_RELATED_ACCOUNTS = 2;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_ASSESS:
          serviceImpl.assess((dev.recaptchasidecar.v1.AssessRequest) request,
              (io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AssessResponse>) responseObserver);
          break;
        case METHODID_ANNOTATE:
          serviceImpl.annotate((dev.recaptchasidecar.v1.AnnotateRequest) request,
              (io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.AnnotateResponse>) responseObserver);
          break;
        case METHODID_SEARCH_RELATED_ACCOUNTS:
          serviceImpl.searchRelatedAccounts((dev.recaptchasidecar.v1.SearchRelatedAccountsRequest) request,
              (io.grpc.stub.StreamObserver<dev.recaptchasidecar.v1.SearchRelatedAccountsResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getAssessMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.recaptchasidecar.v1.AssessRequest,
              dev.recaptchasidecar.v1.AssessResponse>(
                service, METHODID_ASSESS)))
        .addMethod(
          getAnnotateMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.recaptchasidecar.v1.AnnotateRequest,
              dev.recaptchasidecar.v1.AnnotateResponse>(
                service, METHODID_ANNOTATE)))
        .addMethod(
          getSearchRelatedAccountsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.recaptchasidecar.v1.SearchRelatedAccountsRequest,
              dev.recaptchasidecar.v1.SearchRelatedAccountsResponse>(
                service, METHODID_SEARCH_RELATED_ACCOUNTS)))
        .build();
  }

  private static abstract class VerificationServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    VerificationServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.recaptchasidecar.v1.SidecarProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("VerificationService");
    }
  }

  private static final class VerificationServiceFileDescriptorSupplier
      extends VerificationServiceBaseDescriptorSupplier {
    VerificationServiceFileDescriptorSupplier() {}
  }

  private static final class VerificationServiceMethodDescriptorSupplier
      extends VerificationServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    VerificationServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (VerificationServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new VerificationServiceFileDescriptorSupplier())
              .addMethod(getAssessMethod())
              .addMethod(getAnnotateMethod())
              .addMethod(getSearchRelatedAccountsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
