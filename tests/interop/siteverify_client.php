<?php
// google/recaptcha for PHP (Debian's php-google-recaptcha) as an app uses it, with only the
// verify URL changed: `php siteverify_client.php URL SECRET TOKEN [ACTION THRESHOLD]`.
// Prints what the library concluded, as JSON, for tests/interop/test_siteverify_clients.py.
require '/usr/share/php/ReCaptcha/autoload.php';

$url = $argv[1];
$secret = $argv[2];
$token = $argv[3];
$recaptcha = new \ReCaptcha\ReCaptcha($secret, new \ReCaptcha\RequestMethod\Post($url));
if (isset($argv[4])) {
    // the library's own checks on the answer: action, score, age
    $recaptcha->setExpectedAction($argv[4])
        ->setScoreThreshold((float) $argv[5])
        ->setChallengeTimeout(300);
}
$response = $recaptcha->verify($token, '198.51.100.7');
echo json_encode(array(
    'success' => $response->isSuccess(),
    'error_codes' => $response->getErrorCodes(),
    'score' => $response->getScore(),
    'action' => $response->getAction(),
    'hostname' => $response->getHostname(),
    'challenge_ts' => $response->getChallengeTs(),
)), "\n";
