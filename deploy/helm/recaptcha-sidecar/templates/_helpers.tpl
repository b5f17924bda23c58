{{/*
Names and labels.
*/}}
{{- define "recaptcha-sidecar.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recaptcha-sidecar.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "recaptcha-sidecar.workloadName" -}}
{{- default (include "recaptcha-sidecar.fullname" .) .Values.workload.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recaptcha-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recaptcha-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "recaptcha-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: {{ include "recaptcha-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "recaptcha-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recaptcha-sidecar.workloadName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recaptcha-sidecar.redisName" -}}
{{- printf "%s-redis" (include "recaptcha-sidecar.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recaptcha-sidecar.redisSecretName" -}}
{{- default (include "recaptcha-sidecar.redisName" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "recaptcha-sidecar.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The listen addresses: config.listen, plus 0.0.0.0:<service.port> when the Service is on.
*/}}
{{- define "recaptcha-sidecar.listen" -}}
{{- $listen := .Values.config.listen }}
{{- if .Values.service.enabled }}
{{- $listen = append $listen (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- end }}
{{- toJson $listen }}
{{- end }}

{{/*
The sidecar's settings file: .Values.config plus what the chart wires itself. Rendered as
JSON (which is YAML) so numbers keep their form: toYaml would print 1000000 as 1e+06.
*/}}
{{- define "recaptcha-sidecar.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "listen" (include "recaptcha-sidecar.listen" . | fromJsonArray) }}
{{- $_ = set $config "health_listen" (printf "0.0.0.0:%d" (int .Values.probes.port)) }}
{{- $_ = set $config "metrics_insecure" .Values.metrics.insecure }}
{{- if or .Values.redis.enabled .Values.replayStore.urlSecret.name }}
{{- /* the sidecar gets it from RECAPTCHA_SIDECAR_REPLAY_STORE (a Secret) */}}
{{- $_ = unset $config "replay_store" }}
{{- end }}
{{- if .Values.credentials.apiKey.existingSecret }}
{{- $_ = set $config "api_key_file" "/var/run/secrets/recaptcha-sidecar/api-key/api-key" }}
{{- end }}
{{- if .Values.listenerSecurity.tls.secretName }}
{{- $_ = set $config "tls_cert_file" "/var/run/secrets/recaptcha-sidecar/tls/tls.crt" }}
{{- $_ = set $config "tls_key_file" "/var/run/secrets/recaptcha-sidecar/tls/tls.key" }}
{{- if .Values.listenerSecurity.tls.clientAuth }}
{{- $_ = set $config "tls_client_ca_file" "/var/run/secrets/recaptcha-sidecar/tls/ca.crt" }}
{{- end }}
{{- end }}
{{- if .Values.listenerSecurity.token.secretName }}
{{- $_ = set $config "auth_token_file" "/var/run/secrets/recaptcha-sidecar/token/token" }}
{{- end }}
{{- if .Values.accountId.existingSecret }}
{{- $_ = set $config "account_id_key_file" "/var/run/secrets/recaptcha-sidecar/account-id/key" }}
{{- end }}
{{- if .Values.siteverifySecrets.existingSecret }}
{{- $_ = set $config "siteverify_secrets_file" "/var/run/secrets/recaptcha-sidecar/siteverify/secrets" }}
{{- end }}
{{- if .Values.outboxStore.urlSecret.name }}
{{- /* the sidecar gets it from RECAPTCHA_SIDECAR_OUTBOX (a Secret) */}}
{{- $_ = unset $config "outbox" }}
{{- end }}
{{- if .Values.outboxKey.existingSecret }}
{{- $_ = set $config "outbox_key_file" "/var/run/secrets/recaptcha-sidecar/outbox-key/key" }}
{{- end }}
{{- if .Values.rateLimitKey.existingSecret }}
{{- $_ = set $config "rate_limit_key_file" "/var/run/secrets/recaptcha-sidecar/rate-limit/key" }}
{{- end }}
{{- toPrettyJson $config }}
{{- end }}

{{/*
Pod annotations that restart the pods (a rolling update) when the config file changes in a
way the sidecar reads only at start. The sidecar hot-reloads its policy from the mounted file
(policy_reload_interval), so by default a policy edit restarts nothing: checksum/config covers
every setting but `policy`; checksum/policy is added with rollOnPolicyChange, or when hot
reload is off (policy_reload_interval: 0). INJECTION, part 5: a pod template's annotations.
*/}}
{{- define "recaptcha-sidecar.configChecksums" -}}
{{- $config := include "recaptcha-sidecar.configFile" . | fromJson }}
{{- $policy := get $config "policy" }}
{{- $_ := unset $config "policy" }}
{{- if .Values.rollOnConfigChange }}
checksum/config: {{ toJson $config | sha256sum }}
{{- end }}
{{- if or .Values.rollOnPolicyChange (eq (float64 .Values.config.policy_reload_interval) 0.0) }}
checksum/policy: {{ toJson $policy | sha256sum }}
{{- end }}
{{- end }}

{{/*
Fail early on a listener the sidecar would refuse: an exposed address that authenticates
nobody, i.e. neither mTLS nor a token (TLS alone encrypts but serves any peer; the sidecar
checks the same at start).
*/}}
{{- define "recaptcha-sidecar.validate" -}}
{{- $tls := .Values.listenerSecurity.tls }}
{{- $mtls := and $tls.secretName $tls.clientAuth }}
{{- $secured := or $mtls .Values.listenerSecurity.token.secretName .Values.config.insecure_listen }}
{{- if and .Values.service.enabled (not $secured) }}
{{- fail "service.enabled exposes the sidecar beyond the pod and TLS alone authenticates nobody: set listenerSecurity.tls.secretName with listenerSecurity.tls.clientAuth=true (mTLS) or listenerSecurity.token.secretName (or config.insecure_listen=true on purpose)" }}
{{- end }}
{{- if and .Values.outboxStore.urlSecret.name (not .Values.outboxKey.existingSecret) }}
{{- fail "outboxStore.urlSecret needs outboxKey.existingSecret: annotations are encrypted before they reach a shared Redis" }}
{{- end }}
{{- if and (not .Values.config.emulator) (not .Values.config.project) }}
{{- fail "config.project is required (the Google Cloud project that owns the reCAPTCHA keys), unless config.emulator=true" }}
{{- end }}
{{- /* the sidecar refuses to start on a Redis store with per-client limits and no shared key */}}
{{- $shared := or .Values.redis.enabled .Values.replayStore.urlSecret.name (not (hasPrefix "memory:" (.Values.config.replay_store | default "memory://"))) }}
{{- $limited := false }}
{{- $policy := .Values.config.policy | default dict }}
{{- range $entry := prepend (values ($policy.actions | default dict)) ($policy.default | default dict) }}
{{- if $entry.rate_limits }}{{ $limited = true }}{{ end }}
{{- end }}
{{- if and $shared $limited (not .Values.rateLimitKey.existingSecret) }}
{{- fail "policy rate_limits with a Redis replay store need rateLimitKey.existingSecret: every pod must name a client's counter with the same secret (openssl rand -base64 32)" }}
{{- end }}
{{- end }}

{{/*
INJECTION, part 1: the sidecar as a native sidecar, one item of a pod's initContainers.
Call it with this chart's context; from a parent chart that has this chart as a dependency:
  initContainers:
    {{- include "recaptcha-sidecar.initContainer" (index .Subcharts "recaptcha-sidecar") | nindent 4 }}
*/}}
{{- define "recaptcha-sidecar.initContainer" -}}
- name: recaptcha-sidecar
  image: {{ include "recaptcha-sidecar.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  restartPolicy: Always
  args: ["serve", "--config", "{{ .Values.configDir }}/config.yaml"]
  {{- $redis := .Values.redis.enabled }}
  {{- $urlSecret := .Values.replayStore.urlSecret.name }}
  {{- $outboxSecret := .Values.outboxStore.urlSecret.name }}
  {{- if or $redis $urlSecret $outboxSecret .Values.extraEnv }}
  env:
    {{- if $redis }}
    - name: REDIS_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "recaptcha-sidecar.redisSecretName" . }}
          key: password
    - name: RECAPTCHA_SIDECAR_REPLAY_STORE
      value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "recaptcha-sidecar.redisName" .) | quote }}
    {{- else if $urlSecret }}
    - name: RECAPTCHA_SIDECAR_REPLAY_STORE
      valueFrom:
        secretKeyRef:
          name: {{ $urlSecret }}
          key: {{ .Values.replayStore.urlSecret.key }}
    {{- end }}
    {{- if $outboxSecret }}
    - name: RECAPTCHA_SIDECAR_OUTBOX
      valueFrom:
        secretKeyRef:
          name: {{ $outboxSecret }}
          key: {{ .Values.outboxStore.urlSecret.key }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    - name: health
      containerPort: {{ .Values.probes.port }}
      protocol: TCP
    {{- if .Values.service.enabled }}
    - name: grpc
      containerPort: {{ .Values.service.port }}
      protocol: TCP
    {{- end }}
  startupProbe:
    grpc:
      port: {{ .Values.probes.port }}
    {{- toYaml .Values.probes.startup | nindent 4 }}
  readinessProbe:
    grpc:
      port: {{ .Values.probes.port }}
      service: recaptcha.sidecar.v1.VerificationService
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  livenessProbe:
    grpc:
      port: {{ .Values.probes.port }}
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: recaptcha-socket
      mountPath: {{ .Values.socketDir }}
    - name: recaptcha-state
      mountPath: {{ .Values.stateDir }}
    - name: recaptcha-config
      mountPath: {{ .Values.configDir }}
      readOnly: true
    - name: recaptcha-tmp
      mountPath: /tmp
    {{- if .Values.credentials.apiKey.existingSecret }}
    - name: recaptcha-api-key
      mountPath: /var/run/secrets/recaptcha-sidecar/api-key
      readOnly: true
    {{- end }}
    {{- if .Values.listenerSecurity.tls.secretName }}
    - name: recaptcha-tls
      mountPath: /var/run/secrets/recaptcha-sidecar/tls
      readOnly: true
    {{- end }}
    {{- if .Values.listenerSecurity.token.secretName }}
    - name: recaptcha-token
      mountPath: /var/run/secrets/recaptcha-sidecar/token
      readOnly: true
    {{- end }}
    {{- if .Values.accountId.existingSecret }}
    - name: recaptcha-account-id
      mountPath: /var/run/secrets/recaptcha-sidecar/account-id
      readOnly: true
    {{- end }}
    {{- if .Values.siteverifySecrets.existingSecret }}
    - name: recaptcha-siteverify
      mountPath: /var/run/secrets/recaptcha-sidecar/siteverify
      readOnly: true
    {{- end }}
    {{- if .Values.outboxKey.existingSecret }}
    - name: recaptcha-outbox-key
      mountPath: /var/run/secrets/recaptcha-sidecar/outbox-key
      readOnly: true
    {{- end }}
    {{- if .Values.redisTls.caSecret.name }}
    - name: recaptcha-redis-ca
      mountPath: /var/run/secrets/recaptcha-sidecar/redis-ca
      readOnly: true
    {{- end }}
    {{- if .Values.rateLimitKey.existingSecret }}
    - name: recaptcha-rate-limit
      mountPath: /var/run/secrets/recaptcha-sidecar/rate-limit
      readOnly: true
    {{- end }}
{{- end }}

{{/*
INJECTION, part 2: the pod's volumes for the sidecar (items of spec.volumes).
*/}}
{{- define "recaptcha-sidecar.volumes" -}}
- name: recaptcha-socket
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.volumes.socketSizeLimit }}
- name: recaptcha-state
  emptyDir:
    sizeLimit: {{ .Values.volumes.stateSizeLimit }}
- name: recaptcha-config
  configMap:
    name: {{ include "recaptcha-sidecar.fullname" . }}
- name: recaptcha-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.volumes.tmpSizeLimit }}
{{- with .Values.credentials.apiKey.existingSecret }}
- name: recaptcha-api-key
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.credentials.apiKey.key }}
        path: api-key
{{- end }}
{{- with .Values.listenerSecurity.tls.secretName }}
- name: recaptcha-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- with .Values.listenerSecurity.token.secretName }}
- name: recaptcha-token
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.listenerSecurity.token.key }}
        path: token
{{- end }}
{{- with .Values.accountId.existingSecret }}
- name: recaptcha-account-id
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.accountId.key }}
        path: key
{{- end }}
{{- with .Values.siteverifySecrets.existingSecret }}
- name: recaptcha-siteverify
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.siteverifySecrets.key }}
        path: secrets
{{- end }}
{{- with .Values.outboxKey.existingSecret }}
- name: recaptcha-outbox-key
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.outboxKey.key }}
        path: key
{{- end }}
{{- with .Values.redisTls.caSecret.name }}
- name: recaptcha-redis-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.redisTls.caSecret.key }}
        path: ca.pem
{{- end }}
{{- with .Values.rateLimitKey.existingSecret }}
- name: recaptcha-rate-limit
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.rateLimitKey.key }}
        path: key
{{- end }}
{{- end }}

{{/*
INJECTION, part 3: the mount each app container needs to reach the Unix socket.
*/}}
{{- define "recaptcha-sidecar.appVolumeMount" -}}
- name: recaptcha-socket
  mountPath: {{ .Values.socketDir }}
{{- end }}

{{/*
INJECTION, part 4: the environment that tells an app where the sidecar is.
*/}}
{{- define "recaptcha-sidecar.appEnv" -}}
{{- $target := first .Values.config.listen }}
{{- range reverse .Values.config.listen }}
{{- if hasPrefix "unix:" . }}{{- $target = . }}{{- end }}
{{- end -}}
- name: RECAPTCHA_SIDECAR_TARGET
  value: {{ $target | quote }}
{{- end }}
