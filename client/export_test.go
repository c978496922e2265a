package client

// GRPCTarget exposes the Dial target translation to the tests.
var GRPCTarget = grpcTarget
