# The Ruby recaptcha gem (Debian's ruby-recaptcha 4.11) as a Rails controller uses it, with only
# `verify_url` changed: `ruby siteverify_client.rb URL SECRET TOKEN`. Prints JSON for
# tests/interop/test_siteverify_clients.py.
#
# This gem version predates reCAPTCHA v3: `verify_recaptcha` answers true/false and keeps the
# reply to itself, so score, action and error codes are read from the reply of
# `Recaptcha.get`, the gem's own GET to verify_url that verify_recaptcha makes.
require 'json'
require 'recaptcha'

url, secret, token = ARGV
Recaptcha.configure do |config|
  config.secret_key = secret
  config.site_key = 'unused-here'
  config.verify_url = url
  config.skip_verify_env = []
end

# What verify_recaptcha needs from a controller: params, request, flash.
class Controller
  include Recaptcha::Verify
  Request = Struct.new(:remote_ip)
  attr_reader :params, :request, :flash

  def initialize(token)
    @params = { 'g-recaptcha-response' => token }
    @request = Request.new('198.51.100.7')
    @flash = {}
  end

  def env
    { 'REMOTE_ADDR' => '198.51.100.7' }
  end
end

mode = ARGV[3] || 'verify'
if mode == 'verify'
  ok = Controller.new(token).verify_recaptcha
  puts JSON.generate({ 'verified' => ok })
else
  reply = JSON.parse(Recaptcha.get({ 'secret' => secret, 'response' => token, 'remoteip' => '198.51.100.7' }, {}))
  puts JSON.generate(reply)
end
